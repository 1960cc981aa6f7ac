// Package layering checks the dependency rules of the tree: the edge is a
// gRPC client of the API and nothing more, and no service builds on
// another. A change that breaks them fails here, before review.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/extagram/extagram"

// implementations are the packages that implement the mesh behind the API.
var implementations = []string{
	module + "/store",
	module + "/feedsvc",
	module + "/uploadsvc",
	module + "/blobsvc",
	module + "/imaging",
	module + "/internal/uploads",
	module + "/internal/convert",
	module + "/internal/app",
	module + "/internal/telegram/announce",
}

// drivers are database drivers and migration tools: only the store needs
// them.
var drivers = []string{
	"database/sql",
	"github.com/go-sql-driver/mysql",
	"modernc.org/sqlite",
	"github.com/pressly/goose",
	// The OpenTelemetry SDK and its exporters are set up by the binary
	// (internal/telemetry/otlp); the edge uses the API only.
	"go.opentelemetry.io/otel/sdk",
	"go.opentelemetry.io/otel/exporters",
}

// deps returns the packages pkg is built from, itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// forbidden returns the packages of list that match one of the prefixes.
func forbidden(list, prefixes []string) []string {
	var bad []string
	for _, p := range list {
		for _, f := range prefixes {
			if p == f || strings.HasPrefix(p, f+"/") {
				bad = append(bad, p)
			}
		}
	}
	return bad
}

func TestEdgeDependsOnTheAPIOnly(t *testing.T) {
	t.Parallel()
	if bad := forbidden(deps(t, module+"/edge"), append(implementations, drivers...)); len(bad) > 0 {
		t.Errorf("the edge builds with implementation packages; it may use gen/ and leaf rule packages only:\n  %s", strings.Join(bad, "\n  "))
	}
}

func TestServicesDoNotImportEachOther(t *testing.T) {
	t.Parallel()
	services := []string{module + "/feedsvc", module + "/uploadsvc", module + "/blobsvc", module + "/edge"}
	for _, svc := range services {
		var others []string
		for _, o := range services {
			if o != svc {
				others = append(others, o)
			}
		}
		if bad := forbidden(deps(t, svc), others); len(bad) > 0 {
			t.Errorf("%s builds with another service: %s", svc, strings.Join(bad, ", "))
		}
	}
}

// TestRulesAreLeaves: the packages of shared rules build on the standard
// library and the generated API only (apierr also on gRPC's status and the
// error detail types), so that any client can use them.
func TestRulesAreLeaves(t *testing.T) {
	t.Parallel()
	for pkg, allowed := range map[string][]string{
		module + "/internal/contract": nil,
		// The Bot API client the edge and the feed role share.
		module + "/internal/telegram": {"github.com/go-telegram/bot"},
		module + "/internal/apierr": {
			module + "/gen/",
			"google.golang.org/grpc",
			"google.golang.org/protobuf",
			"google.golang.org/genproto",
			"golang.org/x/", // of grpc
			// The feed package of gen/ holds the JSON gateway's code.
			"github.com/grpc-ecosystem/grpc-gateway/v2/",
		},
	} {
		for _, d := range deps(t, pkg) {
			if d == pkg || !strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
				continue // itself, or the standard library
			}
			ok := false
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(d, a)
			}
			if !ok {
				t.Errorf("%s builds with %s", pkg, d)
			}
		}
	}
}

// Package layering checks the dependency rules of the tree: the edge is a gRPC client of the API and nothing
// more, and no service builds on another. A change that breaks them fails here, before review.
package layering

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/extagram/extagram/"

var services = []string{module + "feedsvc", module + "uploadsvc", module + "blobsvc", module + "edge"}

// forbiddenForEdge are the packages that implement the mesh behind the API, and the database drivers,
// migration tools and OpenTelemetry SDK (set up by the binary, internal/telemetry/otlp) that only they need.
var forbiddenForEdge = []string{
	module + "store", module + "feedsvc", module + "uploadsvc", module + "blobsvc", module + "imaging", module + "internal/uploads",
	module + "internal/convert", module + "internal/app", module + "internal/telegram/announce",
	"database/sql", "github.com/go-sql-driver/mysql", "modernc.org/sqlite", "github.com/pressly/goose",
	"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters",
}

// leaves are the packages of shared rules, which build on the standard library and the listed modules only,
// so that any client can use them.
var leaves = map[string][]string{
	module + "internal/contract": nil,
	module + "internal/telegram": {"github.com/go-telegram/bot"}, // the Bot API client of the edge and feed
	// apierr: gRPC's status and error detail types; gen/'s feed package holds the JSON gateway's code.
	module + "internal/apierr": {module + "gen/", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto",
		"golang.org/x/", "github.com/grpc-ecosystem/grpc-gateway/v2/"},
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", slices.Concat([]string{"list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}"},
		slices.Collect(maps.Keys(leaves)), services)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	if len(deps) != len(leaves)+len(services) {
		t.Fatalf("go list answered for %d packages, want %d:\n%s", len(deps), len(leaves)+len(services), out)
	}
	for _, svc := range services {
		forbidden := slices.DeleteFunc(slices.Clone(services), func(s string) bool { return s == svc })
		if svc == module+"edge" {
			forbidden = forbiddenForEdge // the edge may use gen/ and leaf rule packages only
		}
		for _, d := range deps[svc] {
			if slices.ContainsFunc(forbidden, func(f string) bool { return d == f || strings.HasPrefix(d, f+"/") }) {
				t.Errorf("%s builds with %s: the edge is a client of the API only, and no service builds on another", svc, d)
			}
		}
	}
	for pkg, allowed := range leaves {
		for _, d := range deps[pkg] {
			ok := !strings.Contains(strings.SplitN(d, "/", 2)[0], ".") // the standard library
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(d, a)
			}
			if !ok {
				t.Errorf("%s builds with %s", pkg, d)
			}
		}
	}
}

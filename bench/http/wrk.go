package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkThreads is wrk's -t: one thread per core of the 2-core machines the
// benchmark is made for.
const wrkThreads = 2

// wrkResult is what one wrk run reported.
type wrkResult struct {
	requests  int64
	elapsed   time.Duration
	rps       float64
	p50, p99  time.Duration
	non2xx3xx int64 // "Non-2xx or 3xx responses"
	socket    int64 // connect + read + write + timeout errors
	socketMsg string
	// From the upload script: answers 303, and any other answer.
	seeOther, other int64
	counted         bool
	output          string
}

// errors is the number of failed requests: socket errors, and answers
// other than 2xx/3xx (other than 303 for uploads).
func (r wrkResult) errors() int64 {
	if r.counted {
		return r.socket + r.other
	}
	return r.socket + r.non2xx3xx
}

// runWrk runs `wrk -t2 -cCONNS -dSECONDS --latency` against url, with the
// Lua script if not "". A request still unanswered after 30 s counts as a
// timeout (wrk's default of 2 s would leave slow answers out of the
// latency figures).
func runWrk(ctx context.Context, url string, conns int, d time.Duration, script string) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := []string{"-t" + strconv.Itoa(wrkThreads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s", "--latency", "--timeout", "30s"}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return wrkResult{}, ctx.Err()
	}
	if err != nil {
		return wrkResult{output: string(out)}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return r, nil
}

var (
	wrkPercentile = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkRequests   = regexp.MustCompile(`(?m)^\s+([0-9]+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	wrkRPS        = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx     = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses:\s+([0-9]+)`)
	wrkSocket     = regexp.MustCompile(`(?m)^\s+Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
	wrkCounted    = regexp.MustCompile(`(?m)^extagram-status 303=([0-9]+) other=([0-9]+)$`)
)

// parseWrk reads wrk's report (with --latency).
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{output: out}
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no request count in wrk's output")
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.elapsed = wrkDuration(m[2], m[3])
	if m := wrkRPS.FindStringSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	} else {
		return r, fmt.Errorf("no Requests/sec in wrk's output")
	}
	for _, m := range wrkPercentile.FindAllStringSubmatch(out, -1) {
		d := wrkDuration(m[2], m[3])
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.requests > 0 && (r.p50 == 0 || r.p99 == 0) {
		return r, fmt.Errorf("no latency distribution in wrk's output")
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx3xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.socket += n
		}
		r.socketMsg = strings.TrimSpace(m[0])
	}
	if m := wrkCounted.FindStringSubmatch(out); m != nil {
		r.counted = true
		r.seeOther, _ = strconv.ParseInt(m[1], 10, 64)
		r.other, _ = strconv.ParseInt(m[2], 10, 64)
	}
	return r, nil
}

func wrkDuration(num, unit string) time.Duration {
	v, _ := strconv.ParseFloat(num, 64)
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(v * float64(scale))
}

// uploadScript is wrk's Lua script for uploads: every request is the same
// multipart form read from a file, and each thread counts the answers 303
// (wrk follows no redirect) and the others.
const uploadScript = `-- Written by bench/http.
wrk.method = "POST"
local f = assert(io.open([==[%s]==], "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "%s"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  see_other = 0
  other = 0
end

function response(status, headers, body)
  if status == 303 then
    see_other = see_other + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local s, o = 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("see_other")
    o = o + t:get("other")
  end
  io.write(string.format("extagram-status 303=%%d other=%%d\n", s, o))
end
`

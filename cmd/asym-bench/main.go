// Command asym-bench measures asym at production scale, side by side with
// what an engineer would run instead (iproute2, a conntrack dump), and
// prints one table: median and spread of wall time, peak RSS, and the ratio
// against the equivalent measured in the same run.
//
//	sudo go run ./cmd/asym-bench                      # every scenario
//	sudo go run ./cmd/asym-bench -scenario routes -runs 21
//
// Each scenario is built in throwaway network namespaces named
// asym-bench-*, with addresses from the documentation and benchmarking
// ranges only (198.18.0.0/15, 2001:db8::/32, 198.51.100.0/24,
// 203.0.113.0/24); nothing is connected to the host's network and no packet
// is sent. Everything is removed at the end, also on error or ctrl+c.
//
// Scenarios (the scale issue's numbering):
//
//	routes     1. 1,000,000 IPv4 routes in main via a gateway, 200 rules, 50 small tables: asym check
//	conntrack  2. 1,000,000 conntrack entries: the flow's entry and statistics (ProbeConntrack)
//	events     3. an unrelated conntrack event flood while watching one flow (runs TestWatchFloodBudget)
//	v6         4. 500,000 IPv6 routes in main: asym check on an IPv6 flow
//	tui        5. the terminal view: start to first full frame, bytes per second of the live view
//	largenode  issue 17: 100,000 nftables rules, 20,000 policy rules, 5,000 interfaces, each alone
//	           and with a million routes and a million conntrack entries on one host
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

var scenarioNames = []string{"routes", "conntrack", "events", "v6", "tui", "largenode"}

type config struct {
	runs    int
	routes  int // IPv4 routes in main for the routes scenario
	routes6 int // IPv6 routes for v6
	entries int // conntrack entries
	// The large node's firewall rules, policy rules, interfaces and the
	// interfaces of those with an address.
	nftRules, policyRules, ifaces, ifAddrs int
	baseline                               string // another asym binary measured beside, on the large node
	flood                                  int    // seconds of the event flood
	liveFor                                time.Duration
	asym                                   string // the asym binary under test
	root                                   string // the module's directory
	tmp                                    string
	devnull                                *os.File
	startedAt                              time.Time
}

func main() {
	// The conntrack measurements that need a process of their own (for
	// their memory) run as children of this program.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case ctDumpChildArg:
			os.Exit(ctDumpChild(os.Args[2:]))
		case ctProbeChildArg:
			os.Exit(ctProbeChild(os.Args[2:]))
		case nftListChildArg:
			os.Exit(nftListChild(os.Args[2:]))
		}
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("asym-bench", flag.ContinueOnError)
	scen := fs.String("scenario", "all", "what to measure: all, or a comma-separated list of "+strings.Join(scenarioNames, ", "))
	var cfg config
	fs.IntVar(&cfg.runs, "runs", 21, "runs of each measured command (the median and the 10th–90th percentiles are reported)")
	fs.IntVar(&cfg.routes, "routes", 1_000_000, "IPv4 routes in main for the routes scenario")
	fs.IntVar(&cfg.routes6, "routes6", 500_000, "IPv6 routes in main for the v6 scenario")
	fs.IntVar(&cfg.entries, "entries", 1_000_000, "conntrack entries for the conntrack scenario")
	fs.IntVar(&cfg.flood, "flood-seconds", 60, "length of the conntrack event flood (events scenario)")
	fs.DurationVar(&cfg.liveFor, "live-for", 10*time.Second, "how long the TUI's live view is measured")
	fs.IntVar(&cfg.nftRules, "nftrules", 100_000, "nftables rules on the large node (kube-proxy shape: 50 to a service)")
	fs.IntVar(&cfg.policyRules, "policyrules", 20_000, "policy rules on the large node")
	fs.IntVar(&cfg.ifaces, "ifaces", 5_000, "interfaces on the large node (veth pairs)")
	fs.IntVar(&cfg.ifAddrs, "ifaddrs", 500, "interfaces with an address on the large node")
	fs.StringVar(&cfg.baseline, "baseline", "", "another asym binary to measure beside on the large node (e.g. one built before the path walk)")
	fs.StringVar(&cfg.asym, "asym", "", "the asym binary to measure (default: built from this repository with go build)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sudo go run ./cmd/asym-bench [-scenario all|%s] [-runs 21]\n", strings.Join(scenarioNames, "|"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has said what is wrong, with the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "asym-bench: unexpected argument %q: give options only (-scenario, -runs)\n", fs.Arg(0))
		return 2
	}
	want, err := parseScenarios(*scen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "asym-bench: %v\n", err)
		return 2
	}
	switch {
	case cfg.runs < 3 || cfg.runs > 1000:
		err = errors.New("-runs must be between 3 and 1000")
	case cfg.routes < 1 || cfg.routes > maxRoutes4:
		err = fmt.Errorf("-routes must be between 1 and %d (every prefix of 198.18.0.0/15 at four metrics)", maxRoutes4)
	case cfg.routes6 < 1 || cfg.routes6 > maxRoutes6:
		err = fmt.Errorf("-routes6 must be between 1 and %d", maxRoutes6)
	case cfg.entries < 1 || cfg.entries > maxEntries:
		err = fmt.Errorf("-entries must be between 1 and %d", maxEntries)
	case cfg.flood < 5:
		err = errors.New("-flood-seconds must be at least 5")
	case cfg.nftRules < 50 || cfg.nftRules > 1_000_000 || cfg.policyRules < 1 || cfg.policyRules > 32_000:
		err = errors.New("-nftrules must be between 50 and 1,000,000, -policyrules between 1 and 32,000")
	case cfg.ifaces < 2 || cfg.ifaces > 60_000 || cfg.ifAddrs < 0 || cfg.ifAddrs > min(cfg.ifaces, 2048):
		err = errors.New("-ifaces must be between 2 and 60,000, -ifaddrs at most -ifaces and 2,048")
	case cfg.liveFor < time.Second:
		err = errors.New("-live-for must be at least 1s")
	case os.Geteuid() != 0:
		err = errors.New("needs root: it builds network namespaces, routes and conntrack entries (run: sudo go run ./cmd/asym-bench)")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "asym-bench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	cfg.startedAt = time.Now()
	res, err := bench(ctx, &cfg, want)
	if res != nil {
		res.print(os.Stdout, &cfg)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(os.Stderr, "asym-bench: %v\n", err)
		return 1
	}
	return 0
}

func parseScenarios(s string) ([]string, error) {
	if s == "all" {
		return scenarioNames, nil
	}
	var out []string
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if !slices.Contains(scenarioNames, w) {
			return nil, fmt.Errorf("unknown scenario %q: use all or %s", w, strings.Join(scenarioNames, ", "))
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out, nil
}

// bench runs the scenarios in the order. A scenario that fails is
// reported and the next one still runs; leftovers are removed either way.
func bench(ctx context.Context, cfg *config, want []string) (*results, error) {
	res := &results{}
	if err := removeLeftovers(); err != nil {
		return nil, err
	}
	var err error
	if cfg.root, err = moduleRoot(); err != nil {
		return nil, err
	}
	if cfg.tmp, err = os.MkdirTemp("", "asym-bench-"); err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(cfg.tmp)
	if cfg.devnull, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
		return nil, err
	}
	defer cfg.devnull.Close()
	if cfg.asym == "" {
		progress("building asym (go build ./cmd/asym)")
		if cfg.asym, err = buildAsym(ctx, cfg); err != nil {
			return nil, err
		}
	}
	res.machine = describeMachine()
	var errs []error
	for _, s := range want {
		if ctx.Err() != nil {
			break
		}
		var err error
		switch s {
		case "routes":
			err = benchRoutes(ctx, cfg, res, false)
		case "conntrack":
			err = benchConntrack(ctx, cfg, res)
		case "events":
			err = benchEvents(ctx, cfg, res)
		case "v6":
			err = benchRoutes(ctx, cfg, res, true)
		case "tui":
			err = benchTUI(ctx, cfg, res)
		case "largenode":
			err = benchLargeNode(ctx, cfg, res)
		}
		if err != nil {
			res.note(s, "FAILED: %v", err)
			errs = append(errs, fmt.Errorf("scenario %s: %w", s, err))
		}
		if lerr := removeLeftovers(); lerr != nil {
			errs = append(errs, lerr)
		}
	}
	if ctx.Err() != nil && len(errs) == 0 {
		errs = append(errs, ctx.Err())
	}
	return res, errors.Join(errs...)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "asym-bench: "+format+"\n", args...)
}

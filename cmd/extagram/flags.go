package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// envName is the environment variable that can set a flag:
// --feed-target is EXTAGRAM_FEED_TARGET.
func envName(flagName string) string {
	return "EXTAGRAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse sets the flags from the environment, then from args (which win).
func parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", envName(f.Name), serr)
			}
		}
	})
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: extagram %s [flags]\n\n%s\n\nEvery flag can also be set with EXTAGRAM_<FLAG_NAME>, e.g. --data-dir as EXTAGRAM_DATA_DIR.\n\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

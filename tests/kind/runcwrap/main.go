// runcwrap runs the real runc without CAP_SYS_RESOURCE.
//
// The test machine's capability bounding set lacks CAP_SYS_RESOURCE, so runc
// fails to start any container that asks for it (every privileged container,
// and so every kind node) with "unable to apply caps: operation not permitted".
// Registered as the container engine's runtime, this removes the capability
// from the bundle's config.json on create/run and from the process file on
// exec, then execs the real runc with the same arguments.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// realRunc is set at link time (-X main.realRunc=...).
var realRunc = "/usr/sbin/runc"

const dropped = "CAP_SYS_RESOURCE"

// Global runc flags that take a value; the subcommand is the first other word.
var globalValued = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

func subcommand(args []string) (string, int) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if globalValued[a] {
			i++
			continue
		}
		if !strings.HasPrefix(a, "-") {
			return a, i
		}
	}
	return "", -1
}

// flagValue finds --name VALUE, --name=VALUE or -short VALUE after position from.
func flagValue(args []string, from int, long, short string) string {
	for i := from; i < len(args); i++ {
		a := args[i]
		if (a == long || a == short) && i+1 < len(args) {
			return args[i+1]
		}
		if strings.HasPrefix(a, long+"=") {
			return a[len(long)+1:]
		}
	}
	return ""
}

func without(caps []any) []any {
	out := caps[:0]
	for _, c := range caps {
		if c != dropped {
			out = append(out, c)
		}
	}
	return out
}

// stripCaps removes the capability from every set of the process object at path
// (a config.json when inConfig, else a bare process.json), rewriting it in place.
func stripCaps(path string, inConfig bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	process := doc
	if inConfig {
		p, ok := doc["process"].(map[string]any)
		if !ok {
			return nil
		}
		process = p
	}
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return nil
	}
	for set, v := range caps {
		if list, ok := v.([]any); ok {
			caps[set] = without(list)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

func main() {
	args := os.Args[1:]
	cmd, at := subcommand(args)
	var err error
	switch cmd {
	case "create", "run":
		bundle := flagValue(args, at+1, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		err = stripCaps(filepath.Join(bundle, "config.json"), true)
	case "exec":
		if p := flagValue(args, at+1, "--process", "-p"); p != "" {
			err = stripCaps(p, false)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
		os.Exit(1)
	}
	err = syscall.Exec(realRunc, append([]string{realRunc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", realRunc, err)
	os.Exit(127)
}

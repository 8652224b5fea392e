// Command fargate-node is a Fargate microVM's kubelet and kube-proxy, run in one process.
//
// Fargate runs both in every microVM. As two programs, each maps its own copy of the code they share
// (client-go, the API types, the Go runtime) and keeps a heap of its own; in one process that is paid
// once. Each half is the unchanged upstream command from the same k8s.io/kubernetes module that builds the
// standalone kubelet and kube-proxy, so the node's events, logs and behaviour are theirs.
//
// Usage: fargate-node [<kubelet flags>] [--proxy <kube-proxy flags>]
//
// With flags on both sides of --proxy both run; with flags on one side only that one runs (so
// "fargate-node --version" is the kubelet's version and "fargate-node --proxy --version" kube-proxy's).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// separator is the argument between the kubelet's flags and kube-proxy's.
const separator = "--proxy"

func main() {
	kubeletArgs, proxyArgs, withProxy := split(os.Args[1:])
	if !withProxy {
		os.Exit(cli.Run(newKubelet(kubeletArgs)))
	}
	if len(kubeletArgs) == 0 {
		os.Exit(cli.Run(newProxy(proxyArgs)))
	}
	// Both halves apply the logging options they were given; the second application of the same options
	// is accepted instead of refused.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	proxyCommand, kubeletCommand := newProxy(proxyArgs), newKubelet(kubeletArgs)
	go func() {
		// kube-proxy runs as long as the node: its end is the node's failure, as the kubelet's is.
		err := cli.RunNoErrOutput(proxyCommand)
		fmt.Fprintf(os.Stderr, "kube-proxy stopped: %v\n", err)
		os.Exit(1)
	}()
	os.Exit(cli.Run(kubeletCommand))
}

func newKubelet(args []string) *cobra.Command {
	command := kubelet.NewKubeletCommand(context.Background())
	command.SetArgs(args)
	return command
}

func newProxy(args []string) *cobra.Command {
	command := proxy.NewProxyCommand()
	command.SetArgs(args)
	return command
}

func split(args []string) (before, after []string, found bool) {
	for i, arg := range args {
		if arg == separator {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

// pulumi-language-python: a small Python language host for the Pulumi engine.
//
// The upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by
// the Go module proxy this project can reach, so we build this one from the pinned sdk/v3 protocol instead. It
// runs programs with the SDK's own `pulumi-language-python-exec` (copied next to this binary from the same pinned
// sdk/v3 module), and policy packs through RunPlugin, exactly as the engine expects of any language host. What it
// leaves out: dependency discovery of plugins (GetRequiredPackages answers none; plugins are found on PATH or in
// the plugin cache), program generation and packing (`pulumi convert`, `pulumi package`), and poetry/uv toolchains.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Version is set at build time to the pinned Pulumi release.
var Version = "0.0.0-dev"

// exitAfterUserMessage is the exec script's code for "an error was already shown to the user".
const exitAfterUserMessage = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string

	mu       sync.Mutex
	children map[*exec.Cmd]struct{}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pulumi-language-python ENGINE_ADDRESS")
		os.Exit(2)
	}
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	h := &host{
		engineAddress: os.Args[len(os.Args)-1],
		execScript:    filepath.Join(filepath.Dir(self), "pulumi-language-python-exec"),
		children:      map[*exec.Cmd]struct{}{},
	}
	if _, err := os.Stat(h.execScript); err != nil {
		fatal(fmt.Errorf("missing %s: reinstall the toolchain with scripts/install-pulumi", h.execScript))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Exit (and take the program with us) when the engine goes away, e.g. `pulumi up` killed with SIGKILL.
	go func() {
		_ = rpcutil.Healthcheck(ctx, h.engineAddress, 2*time.Second, cancel)
	}()
	go func() {
		<-ctx.Done()
		h.killChildren()
		os.Exit(1)
	}()

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fatal(err)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

// python picks the interpreter: the project's `virtualenv` runtime option, then PULUMI_PYTHON_CMD, then python3.
func python(info *pulumirpc.ProgramInfo) (string, []string) {
	if info != nil && info.Options != nil {
		if venv, ok := info.Options.AsMap()["virtualenv"].(string); ok && venv != "" {
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.RootDirectory, venv)
			}
			bin := filepath.Join(venv, "bin")
			return filepath.Join(bin, "python"), []string{
				"VIRTUAL_ENV=" + venv,
				"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
			}
		}
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, nil
	}
	return "python3", nil
}

func (h *host) start(cmd *exec.Cmd) error {
	// No new process group: the engine stops a plugin by SIGKILLing the plugin's whole process group, and the
	// program and policy packs we start must go with it (else they keep our stdout open and the engine waits forever).
	if err := cmd.Start(); err != nil {
		return err
	}
	h.mu.Lock()
	h.children[cmd] = struct{}{}
	h.mu.Unlock()
	return nil
}

func (h *host) wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	h.mu.Lock()
	delete(h.children, cmd)
	h.mu.Unlock()
	return err
}

func (h *host) killChildren() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.children {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}
}

func (h *host) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (h *host) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) RuntimeOptionsPrompts(
	ctx context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	exe, _ := python(req.Info)
	out, err := exec.CommandContext(ctx, exe, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("running %s --version: %w", exe, err)
	}
	return &pulumirpc.AboutResponse{Executable: exe, Version: strings.TrimSpace(string(out))}, nil
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	msg := "dependencies are installed by `make setup` (scripts/setup-venv) into the project's virtualenv\n"
	return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: []byte(msg)})
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	// The exec script needs JSON objects and arrays, never null.
	if req.Config == nil {
		req.Config = map[string]string{}
	}
	if req.ConfigSecretKeys == nil {
		req.ConfigSecretKeys = []string{}
	}
	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.ConfigSecretKeys)
	if err != nil {
		return nil, err
	}
	program := req.Program
	root := req.Pwd
	if req.Info != nil {
		program = req.Info.EntryPoint
		if !filepath.IsAbs(program) {
			program = filepath.Join(req.Info.ProgramDirectory, program)
		}
		root = req.Info.RootDirectory
	}
	exe, env := python(req.Info)
	args := []string{
		"-u", h.execScript,
		"--monitor", req.MonitorAddress,
		"--engine", h.engineAddress,
		"--project", req.Project,
		"--stack", req.Stack,
		"--pwd", req.Pwd,
		"--dry_run", strconv.FormatBool(req.DryRun),
		"--parallel", strconv.Itoa(int(req.Parallel)),
		"--organization", req.Organization,
		"--root_directory", root,
		program,
	}
	args = append(args, req.Args...)
	cmd := exec.Command(exe, args...)
	cmd.Dir = req.Pwd
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if err := h.start(cmd); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not start %s: %v", exe, err)}, nil
	}
	err = h.wait(cmd)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == exitAfterUserMessage:
		return &pulumirpc.RunResponse{Bail: true}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited: %v", err)}, nil
	}
}

// RunPlugin runs a Python plugin such as a policy pack: `python -u <dir> ARGS`, streaming its output back.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	dir := req.Program
	if req.Info != nil && req.Info.ProgramDirectory != "" {
		dir = req.Info.ProgramDirectory
	}
	exe, env := python(req.Info)
	cmd := exec.Command(exe, append([]string{"-u", dir}, req.Args...)...)
	cmd.Dir = req.Pwd
	cmd.Env = append(append(os.Environ(), req.Env...), env...)
	send := &streamSender{server: server}
	cmd.Stdout = writerFunc(func(p []byte) error {
		return send.send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: p}})
	})
	cmd.Stderr = writerFunc(func(p []byte) error {
		return send.send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: p}})
	})
	if err := h.start(cmd); err != nil {
		return err
	}
	// The engine cancels the stream to stop the plugin (analyzer Close): a policy pack never exits on its own.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-server.Context().Done():
			_ = cmd.Process.Kill()
		case <-stop:
		}
	}()
	code := 0
	if err := h.wait(cmd); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return err
		}
		code = exitErr.ExitCode()
	}
	return send.send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
}

// streamSender serialises sends: stdout and stderr are copied by two goroutines.
type streamSender struct {
	mu     sync.Mutex
	server pulumirpc.LanguageRuntime_RunPluginServer
}

func (s *streamSender) send(resp *pulumirpc.RunPluginResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server.Send(resp)
}

type writerFunc func([]byte) error

func (f writerFunc) Write(p []byte) (int, error) {
	buf := make([]byte, len(p))
	copy(buf, p)
	if err := f(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = writerFunc(nil)

package deploy

import (
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses deploy/Dockerfile with BuildKit's parser and turns
// it into typed stages, with BuildKit's build checks (docker build --check)
// that run at that point; any parser warning or check finding fails.
func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: parser warning: %s %s", w.Short, w.Detail)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile: build check %s: %s (%s) at %v", rule, msg, url, loc)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

// A multi-stage build of a static binary, run as a non-root user on
// distroless/static, exposing sockmon's two default ports, with a
// HEALTHCHECK through `sockmon check` on the control port.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.BaseName, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", build.BaseName)
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static", final.BaseName)
	}

	static := false
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			line := strings.Join(r.CmdLine, " ")
			if strings.Contains(line, "CGO_ENABLED=0") && strings.Contains(line, "go build") && strings.Contains(line, "./cmd/sockmon") {
				static = true
			}
		}
	}
	if !static {
		t.Error("no RUN CGO_ENABLED=0 go build ... ./cmd/sockmon in the build stage")
	}

	var (
		user        string
		exposed     []string
		entrypoint  []string
		cmd         []string
		health      []string
		copiedTo    []string
		env         = map[string]string{}
		userIndex   = -1
		copiedBuild = false
	)
	for i, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user, userIndex = c.User, i
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Error("ENTRYPOINT in shell form: distroless has no shell; use the exec form")
			}
			entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Error("CMD in shell form: distroless has no shell; use the exec form")
			}
			cmd = c.CmdLine
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		case *instructions.CopyCommand:
			if c.From == build.Name {
				copiedBuild = true
				copiedTo = append(copiedTo, c.DestPath)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		}
	}

	// Non-root, by number (Kubernetes' runAsNonRoot can only verify a
	// numeric user), the same as the Deployment's runAsUser, and last.
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	if err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root user", user)
	}
	if userIndex < 0 || slices.ContainsFunc(final.Commands[userIndex+1:], func(c instructions.Command) bool {
		_, ok := c.(*instructions.UserCommand)
		return ok
	}) {
		t.Error("the final stage must end as the non-root USER")
	}
	if rs := loadManifests(t).deploy.Spec.Template.Spec.SecurityContext.RunAsUser; rs == nil || strconv.FormatInt(*rs, 10) != uid {
		t.Errorf("USER %s differs from the Kubernetes runAsUser %v", uid, rs)
	}

	wsPort, controlPort := servePort(t, "addr"), servePort(t, "control-addr")
	if !slices.Equal(exposed, []string{wsPort, controlPort}) {
		t.Errorf("EXPOSE %v, want %s %s (the defaults of --addr and --control-addr)", exposed, wsPort, controlPort)
	}

	if len(entrypoint) != 1 || !copiedBuild || !slices.Contains(copiedTo, entrypoint[0]) {
		t.Errorf("ENTRYPOINT %v: want the binary copied from the build stage (%v)", entrypoint, copiedTo)
	}
	if !slices.Equal(cmd, []string{"serve"}) {
		t.Errorf("CMD %v, want [serve]", cmd)
	}

	// HEALTHCHECK CMD ["<binary>", "check", "--url", "http://127.0.0.1:<control port>", "--exit-codes", "docker"]
	// (Docker's HEALTHCHECK takes exit 0 and 1 only.)
	if len(health) != 7 || health[5] != "--exit-codes" || health[6] != "docker" {
		t.Fatalf("HEALTHCHECK %v: want --exit-codes docker at the end (Docker reserves exit 2)", health)
	}
	if health[0] != "CMD" || len(entrypoint) == 0 || health[1] != entrypoint[0] || health[2] != "check" || health[3] != "--url" {
		t.Fatalf("HEALTHCHECK %v: want CMD [%v check --url http://127.0.0.1:%s] in exec form", health, entrypoint, controlPort)
	}
	u, err := url.Parse(health[4])
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() != controlPort {
		t.Errorf("HEALTHCHECK --url %q: want http://127.0.0.1:%s", health[4], controlPort)
	}

	flagEnv := map[string]bool{}
	for _, f := range serveFlags(t) {
		flagEnv[f.Env] = true
	}
	for k := range env {
		if strings.HasPrefix(k, "SOCKMON_") && !flagEnv[k] {
			t.Errorf("ENV %s: sockmon serve has no flag for it", k)
		}
		if strings.Contains(k, "SECRET") {
			t.Errorf("ENV %s: secrets do not belong in the image", k)
		}
	}
	if dir := env["SOCKMON_DATA_DIR"]; dir == "" || !slices.Contains(copiedTo, dir) {
		t.Errorf("SOCKMON_DATA_DIR %q should be a directory the image creates for the non-root user (%v)", dir, copiedTo)
	}
}

// The build context leaves out build outputs, npm packages and git history.
func TestDockerignore(t *testing.T) {
	lines := strings.Fields(readFile(t, "Dockerfile.dockerignore"))
	for _, want := range []string{".git", "bin", "data", "**/node_modules"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Dockerfile.dockerignore does not exclude %s", want)
		}
	}
}

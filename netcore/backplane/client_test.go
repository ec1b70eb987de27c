package backplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockmon/sockmon/netcore/backplane/redistest"
)

func TestNewClientKinds(t *testing.T) {
	cases := []struct {
		url  string
		want string // the client's type
	}{
		{"redis://127.0.0.1:6379/2", "*redis.Client"},
		{"rediss://127.0.0.1:6380", "*redis.Client"},
		{"redis://127.0.0.1:26379?master_name=mymaster&addr=127.0.0.1:26380", "*redis.Client"},
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001", "*redis.ClusterClient"},
	}
	for _, c := range cases {
		cl, err := NewClient(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := typeName(cl); got != c.want {
			t.Errorf("%s: %s, want %s", c.url, got, c.want)
		}
		_ = cl.Close()
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	}
	return "other"
}

func TestNewClientRefusesAndNeverEchoesThePassword(t *testing.T) {
	for _, u := range []string{
		"http://u:s3cret@127.0.0.1:6379",
		"redis://u:s3cret@127.0.0.1:6379?no_such_option=1",
		"redis://u:s3cret@127.0.0.1:6379/notanumber",
	} {
		_, err := NewClient(u)
		if err == nil {
			t.Fatalf("%s: accepted", u)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error repeats the password: %v", u, err)
		}
	}
	if r := Redact("redis://u:s3cret@h:1/0"); strings.Contains(r, "s3cret") {
		t.Errorf("Redact: %s", r)
	}
}

func TestNewClientPasswordFromEnvironment(t *testing.T) {
	srv := redistest.Start(t)
	if r, err := srv.Do("CONFIG", "SET", "requirepass", "envpass"); err != nil || r != "+OK" {
		t.Fatalf("requirepass: %q %v", r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Setenv(PasswordEnv, "")
	c, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING without a password succeeded")
	}
	c.Close()

	t.Setenv(PasswordEnv, "envpass")
	c, err = NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with $%s: %v", PasswordEnv, err)
	}
}

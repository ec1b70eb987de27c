package backplane

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// PasswordEnv names the environment variable that holds the Redis
// password when --redis-url carries none. A password on the command line
// shows in `ps`; one in the environment does not.
const PasswordEnv = "SOCKMON_REDIS_PASSWORD"

// NewClient builds the go-redis client for rawURL, one of:
//
//	redis://[user[:password]@]host:port[/db][?options]     one server
//	rediss://...                                         the same over TLS
//	redis://host:port?master_name=NAME[&addr=host:port]  Sentinel: host:port are sentinels
//	redis+cluster://host:port[?addr=host:port...]        Redis Cluster (rediss+cluster:// over TLS)
//
// Options are go-redis's URL options (dial_timeout, read_timeout,
// pool_size, ...). When the URL has no password, the one in
// $SOCKMON_REDIS_PASSWORD is used. Errors never repeat the password: use
// Redact to log a URL.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", Redact(rawURL), errors.Unwrap(err))
	}
	password := os.Getenv(PasswordEnv)
	if p, ok := u.User.Password(); ok && p != "" {
		password = p
	}
	switch u.Scheme {
	case "redis+cluster", "rediss+cluster":
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, urlError(rawURL, err)
		}
		o.Password = password
		return redis.NewClusterClient(o), nil
	case "redis", "rediss":
	default:
		return nil, fmt.Errorf("redis url %s: scheme %q: want redis, rediss, redis+cluster or rediss+cluster", Redact(rawURL), u.Scheme)
	}
	if u.Query().Has("master_name") {
		o, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, urlError(rawURL, err)
		}
		o.Password = password
		if o.SentinelPassword == "" {
			o.SentinelPassword = password
		}
		return redis.NewFailoverClient(o), nil
	}
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, urlError(rawURL, err)
	}
	o.Password = password
	return redis.NewClient(o), nil
}

func urlError(rawURL string, err error) error {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return fmt.Errorf("redis url %s: %s", Redact(rawURL), msg)
}

// Redact returns rawURL with its password replaced by "xxxxx", for logs
// and error messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

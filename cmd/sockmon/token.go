package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/control"
)

// tokenCommand is `sockmon token [--admin [--role VIEWER]] --sub NAME --ttl
// 1h`: it mints a JWT from the secret in the environment and prints it on
// stdout. A client token (HS256 with SOCKMON_JWT_SECRET, claims sub, iat,
// exp) authenticates a WebSocket client as user NAME; an admin token (HS256
// with SOCKMON_ADMIN_SECRET, claims sub, admin: true, role: "ADMIN" or
// "VIEWER", iat, exp) opens the control side's admin API and dashboard, and
// NAME is the actor of its audit log.
func tokenCommand(args []string, stdout, stderr io.Writer) int {
	return mintToken(args, stdout, stderr, os.Getenv)
}

func mintToken(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("token")
	admin := fs.Bool("admin", false, "mint an admin token (signed with $SOCKMON_ADMIN_SECRET) instead of a client token ($SOCKMON_JWT_SECRET)")
	sub := fs.String("sub", "", "subject: the user id of a client token, or the operator an admin token names in the audit log (required)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	role := fs.String("role", control.AdminRole, "role of an admin token: "+control.AdminRole+" (reads and acts) or "+control.ViewerRole+" (reads only)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, "Usage: sockmon token [--admin [--role VIEWER]] --sub NAME [--ttl 1h]\n\n"+
			"Prints a JWT (HS256) signed with the secret from the environment.\n\nFlags:\n")
		printFlags(w, fs)
	}
	if code, done := parseFlags(fs, args, stdout, stderr, usage); done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sockmon token: "+format+"\n", a...)
		return 2
	}
	if *sub == "" {
		return fail("--sub is required")
	}
	if *ttl <= 0 {
		return fail("--ttl %s is not positive", *ttl)
	}
	if *role != control.AdminRole && *role != control.ViewerRole {
		return fail("--role %q: want %s or %s", *role, control.AdminRole, control.ViewerRole)
	}
	if *role != control.AdminRole && !*admin {
		return fail("--role applies to admin tokens: add --admin")
	}
	var tok string
	var err error
	if *admin {
		secret := getenv("SOCKMON_ADMIN_SECRET")
		if secret == "" {
			return fail("SOCKMON_ADMIN_SECRET is not set")
		}
		if len(secret) < control.MinAdminSecretBytes {
			return fail("SOCKMON_ADMIN_SECRET is %d bytes; the control server refuses admin secrets under %d", len(secret), control.MinAdminSecretBytes)
		}
		if secret == getenv("SOCKMON_JWT_SECRET") {
			return fail("SOCKMON_ADMIN_SECRET equals SOCKMON_JWT_SECRET; the control server refuses that")
		}
		tok, err = control.RoleToken([]byte(secret), *sub, *role, *ttl)
	} else {
		secret := getenv("SOCKMON_JWT_SECRET")
		if secret == "" {
			return fail("SOCKMON_JWT_SECRET is not set")
		}
		now := time.Now()
		tok, err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": *sub, "iat": now.Unix(), "exp": now.Add(*ttl).Unix(),
		}).SignedString([]byte(secret))
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmon token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

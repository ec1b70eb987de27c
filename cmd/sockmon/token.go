package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/control"
)

// tokenCommand is `sockmon token [--admin [--role VIEWER]] --sub NAME --ttl
// 1h [--aud A] [--iss I]`: it mints a JWT from the secret in the
// environment and prints it on stdout. A client token (HS256 with
// SOCKMON_JWT_SECRET, claims sub, iat, exp) authenticates a WebSocket
// client as user NAME; an admin token (HS256 with SOCKMON_ADMIN_SECRET,
// claims sub, admin: true, role: "ADMIN" or "VIEWER", iat, exp) opens the
// control side's admin API and dashboard, and NAME is the actor of its
// audit log. --aud and --iss add the claims a server run with
// --jwt-audience and --jwt-issuer requires.
func tokenCommand(args []string, stdout, stderr io.Writer) int {
	return mintToken(args, stdout, stderr, os.Getenv)
}

func mintToken(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("token")
	admin := fs.Bool("admin", false, "mint an admin token (signed with $SOCKMON_ADMIN_SECRET) instead of a client token ($SOCKMON_JWT_SECRET)")
	sub := fs.String("sub", "", "subject: the user id of a client token, or the operator an admin token names in the audit log (required)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token (under the server's --jwt-max-ttl when it has one)")
	role := fs.String("role", control.AdminRole, "role of an admin token: "+control.AdminRole+" (reads and acts) or "+control.ViewerRole+" (reads only)")
	aud := fs.String("aud", "", "aud claim: what the server's --jwt-audience requires (none when empty)")
	iss := fs.String("iss", "", "iss claim: what the server's --jwt-issuer requires (none when empty)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, "Usage: sockmon token [--admin [--role VIEWER]] --sub NAME [--ttl 1h] [--aud AUDIENCE] [--iss ISSUER]\n\n"+
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
		tok, err = control.MintAdminToken([]byte(secret), control.TokenClaims{Sub: *sub, TTL: *ttl, Role: *role, Audience: *aud, Issuer: *iss})
	} else {
		secret := getenv("SOCKMON_JWT_SECRET")
		if secret == "" {
			return fail("SOCKMON_JWT_SECRET is not set")
		}
		if *sub == "server" || strings.HasPrefix(*sub, "anon:") {
			return fail("--sub %q is reserved: the server refuses client tokens that would speak as it or as an anonymous socket", *sub)
		}
		now := time.Now()
		claims := jwt.MapClaims{"sub": *sub, "iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
		if *aud != "" {
			claims["aud"] = *aud
		}
		if *iss != "" {
			claims["iss"] = *iss
		}
		tok, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmon token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

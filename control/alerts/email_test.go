package alerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const (
	smtpUser     = "alerts@example.com"
	smtpPassword = "smtp-pass-0123456789"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts
// it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// mailbox is an SMTP server (go-smtp) that requires AUTH PLAIN, which it
// offers only after STARTTLS, and keeps what it receives.
type mailbox struct {
	mu   sync.Mutex
	msgs []mailMsg
	auth []string
}

type mailMsg struct {
	from string
	to   []string
	data string
	tls  bool
}

type mailSession struct {
	mb    *mailbox
	conn  *smtp.Conn
	authd bool
	msg   mailMsg
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		s.mb.mu.Lock()
		s.mb.auth = append(s.mb.auth, user)
		s.mb.mu.Unlock()
		if user != smtpUser || pass != smtpPassword {
			return errors.New("bad credentials")
		}
		s.authd = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authd {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.msg = mailMsg{from: from}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(b)
	_, s.msg.tls = s.conn.TLSConnectionState()
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, s.msg)
	s.mb.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// startSMTP serves a mailbox on 127.0.0.1; withTLS false offers no
// STARTTLS (and so no AUTH).
func startSMTP(t *testing.T, withTLS bool) (*mailbox, string, *x509.CertPool) {
	t.Helper()
	mb := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb, conn: c}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	var pool *x509.CertPool
	if withTLS {
		cert, p := selfSigned(t)
		srv.TLSConfig, pool = &tls.Config{Certificates: []tls.Certificate{cert}}, p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return mb, ln.Addr().String(), pool
}

// An alert and its resolve arrive by e-mail over STARTTLS with AUTH.
func TestEmailOverSTARTTLSWithAuth(t *testing.T) {
	mb, addr, pool := startSMTP(t, true)
	r := newRig(t, func(c *Config) {
		c.Channels = []ChannelConfig{{Name: "email", Type: TypeEmail, SMTPAddr: addr, SMTPUser: smtpUser, SMTPPassword: smtpPassword,
			From: "sockmon@example.com", To: []string{"oncall@example.com", "ops@example.com"}, TLSConfig: &tls.Config{RootCAs: pool}}}
	})
	k := rule("mem", "connections", ">", 0, 0, LevelCritical)
	k.Description = "memory above 90% of the limit"
	r.e.SetStoredRules([]Rule{k})
	open(r.m, 1)
	r.step(0)
	wstest.WaitFor(t, "the alert e-mail", func() bool { mb.mu.Lock(); defer mb.mu.Unlock(); return len(mb.msgs) == 1 })
	closeConns(r.m, 1)
	r.step(time.Second)
	wstest.WaitFor(t, "the resolve e-mail", func() bool { mb.mu.Lock(); defer mb.mu.Unlock(); return len(mb.msgs) == 2 })
	mb.mu.Lock()
	defer mb.mu.Unlock()
	m := mb.msgs[0]
	if !m.tls || m.from != "sockmon@example.com" || strings.Join(m.to, ",") != "oncall@example.com,ops@example.com" {
		t.Fatalf("message %+v", m)
	}
	for _, want := range []string{"Subject: [FIRING:1] sockmon on node1: mem", "FIRING [critical] mem: connections 1 > 0", "memory above 90% of the limit"} {
		if !strings.Contains(m.data, want) {
			t.Errorf("e-mail lacks %q:\n%s", want, m.data)
		}
	}
	if !strings.Contains(mb.msgs[1].data, "Subject: [RESOLVED] sockmon on node1: mem") {
		t.Errorf("resolve e-mail:\n%s", mb.msgs[1].data)
	}
	if strings.Contains(r.logs.String(), smtpPassword) {
		t.Fatal("the SMTP password is in the logs")
	}
}

// A server that offers no STARTTLS is refused: the password never crosses
// the network in the clear. A wrong password is an error too.
func TestEmailRefusesPlaintext(t *testing.T) {
	mb, addr, _ := startSMTP(t, false)
	r := newRig(t, func(c *Config) {
		c.Channels = []ChannelConfig{{Name: "email", Type: TypeEmail, SMTPAddr: addr, SMTPUser: smtpUser, SMTPPassword: smtpPassword,
			From: "sockmon@example.com", To: []string{"oncall@example.com"}}}
	})
	if err := r.e.Test(t.Context(), "email", "alice"); err == nil {
		t.Fatal("sent without TLS")
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if len(mb.auth) != 0 || len(mb.msgs) != 0 {
		t.Fatalf("credentials or mail went out in the clear: %v %v", mb.auth, mb.msgs)
	}

	mb2, addr2, pool := startSMTP(t, true)
	r2 := newRig(t, func(c *Config) {
		c.Channels = []ChannelConfig{{Name: "email", Type: TypeEmail, SMTPAddr: addr2, SMTPUser: smtpUser, SMTPPassword: "wrong",
			From: "sockmon@example.com", To: []string{"oncall@example.com"}, TLSConfig: &tls.Config{RootCAs: pool}}}
	})
	if err := r2.e.Test(t.Context(), "email", "alice"); err == nil {
		t.Fatal("a wrong password passed")
	}
	if len(mb2.msgs) != 0 {
		t.Fatal("mail accepted without auth")
	}
}

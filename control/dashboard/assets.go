package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// The page's files are embedded in the binary: the dashboard needs nothing
// from the network. static/ is served as is (gzipped once at start for
// clients that accept it); templates/ holds the two HTML pages, rendered
// with the session's CSRF token and role.

//go:embed static
var staticFS embed.FS

//go:embed templates
var templateFS embed.FS

// asset is one static file, plain and gzipped.
type asset struct {
	contentType string
	plain, gz   []byte
}

type assets struct {
	files map[string]*asset
	// version changes with any file: it is in the page's asset URLs, so a
	// browser never mixes files of two builds.
	version string
	app     *template.Template
	login   *template.Template
}

// appData fills templates/app.html.
type appData struct {
	Prefix     string
	Asset      string // the static files' query string
	CSRF       string
	Sub        string
	Role       string
	Version    string
	IntervalMs int64
	ExpiresMs  int64
	// Actions are the action names the audit log can hold, space
	// separated: the command history's filter offers them.
	Actions string
}

// loginData fills templates/login.html.
type loginData struct {
	Prefix string
	Asset  string
	Error  string
}

func loadAssets(prefix string) (*assets, error) {
	a := &assets{files: map[string]*asset{}}
	h := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		a.files[strings.TrimPrefix(p, "static/")] = &asset{contentType: ct, plain: b, gz: gz.Bytes()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.version = hex.EncodeToString(h.Sum(nil))[:12]
	if a.app, err = template.ParseFS(templateFS, "templates/app.html"); err != nil {
		return nil, err
	}
	if a.login, err = template.ParseFS(templateFS, "templates/login.html"); err != nil {
		return nil, err
	}
	return a, nil
}

// serve answers GET /dashboard/static/name. The URLs the pages use carry
// the build's version, so the files may be cached for a day.
func (a *assets) serve(ctx *fasthttp.RequestCtx, name string) {
	f := a.files[name]
	if f == nil {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("not found")
		return
	}
	ctx.Response.Header.Set("Cache-Control", "public, max-age=86400")
	ctx.Response.Header.Set("Vary", "Accept-Encoding")
	ctx.SetContentType(f.contentType)
	if acceptsGzip(ctx) {
		ctx.Response.Header.Set("Content-Encoding", "gzip")
		ctx.SetBody(f.gz)
		return
	}
	ctx.SetBody(f.plain)
}

func acceptsGzip(ctx *fasthttp.RequestCtx) bool {
	return bytes.Contains(ctx.Request.Header.Peek("Accept-Encoding"), []byte("gzip"))
}

func (a *assets) renderApp(ctx *fasthttp.RequestCtx, d appData) {
	d.Asset = a.version
	a.render(ctx, a.app, d)
}

func (a *assets) renderLogin(ctx *fasthttp.RequestCtx, d loginData) {
	d.Asset = a.version
	a.render(ctx, a.login, d)
}

func (a *assets) render(ctx *fasthttp.RequestCtx, t *template.Template, data any) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString("cannot render the page")
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

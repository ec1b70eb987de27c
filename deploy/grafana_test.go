package deploy

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Grafana has no offline validator, so the tests read its provisioning
// files and the dashboard strictly, check the dashboard's wiring, run every
// query through promtool (Prometheus' own parser), and check that every
// metric a panel or a rule names exists in the /metrics of a running sockmon.

type datasourcesFile struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name      string         `json:"name"`
		UID       string         `json:"uid"`
		Type      string         `json:"type"`
		Access    string         `json:"access"`
		URL       string         `json:"url"`
		IsDefault bool           `json:"isDefault"`
		Editable  bool           `json:"editable"`
		JSONData  map[string]any `json:"jsonData"`
	} `json:"datasources"`
}

type dashboardsFile struct {
	APIVersion int `json:"apiVersion"`
	Providers  []struct {
		Name                  string `json:"name"`
		OrgID                 int    `json:"orgId"`
		Folder                string `json:"folder"`
		Type                  string `json:"type"`
		DisableDeletion       bool   `json:"disableDeletion"`
		AllowUIUpdates        bool   `json:"allowUiUpdates"`
		UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
		Options               struct {
			Path string `json:"path"`
		} `json:"options"`
	} `json:"providers"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
		Expr       string         `json:"expr"`
		Format     string         `json:"format"`
	} `json:"targets"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Datasource *datasourceRef `json:"datasource"`
			Query      string         `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDatasources(t *testing.T) datasourcesFile {
	t.Helper()
	var f datasourcesFile
	if err := yaml.UnmarshalStrict([]byte(readFile(t, "grafana/provisioning/datasources/datasources.yml")), &f); err != nil {
		t.Fatalf("datasources.yml: %v", err)
	}
	return f
}

func loadDashboardProviders(t *testing.T) dashboardsFile {
	t.Helper()
	var f dashboardsFile
	if err := yaml.UnmarshalStrict([]byte(readFile(t, "grafana/provisioning/dashboards/dashboards.yml")), &f); err != nil {
		t.Fatalf("dashboards.yml: %v", err)
	}
	return f
}

// dashboardFiles are the dashboards Grafana provisions.
func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard under grafana/dashboards (%v)", err)
	}
	return files
}

func loadDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(readFile(t, path)), &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

func TestGrafanaProvisioning(t *testing.T) {
	ds := loadDatasources(t)
	if ds.APIVersion != 1 {
		t.Errorf("datasources.yml: apiVersion %d, want 1", ds.APIVersion)
	}
	types := map[string]string{}
	defaults := 0
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
		if d.IsDefault {
			defaults++
		}
		if d.Name == "" || d.UID == "" || d.URL == "" || d.Access != "proxy" {
			t.Errorf("datasource %+v: name, uid, url and access: proxy are required", d)
		}
	}
	if types["prometheus"] != "prometheus" || types["loki"] != "loki" {
		t.Errorf("datasources %v: want uid prometheus of type prometheus and uid loki of type loki", types)
	}
	if defaults != 1 {
		t.Errorf("%d default datasources, want 1", defaults)
	}
	dp := loadDashboardProviders(t)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path == "" {
		t.Errorf("dashboards.yml: want apiVersion 1 and one file provider with a path: %+v", dp)
	}
}

// Every panel has a unique id, fits the 24-column grid without overlapping
// another, queries a provisioned data source of its own type and has a
// description; the layout has the sections the operators asked for.
func TestGrafanaDashboardStructure(t *testing.T) {
	dsTypes := map[string]string{}
	for _, d := range loadDatasources(t).Datasources {
		dsTypes[d.UID] = d.Type
	}
	for _, path := range dashboardFiles(t) {
		d := loadDashboard(t, path)
		if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d", path, d.UID, d.Title, d.SchemaVersion)
		}
		ids := map[int]bool{}
		type cell struct{ x, y int }
		taken := map[cell]string{}
		var rows []string
		types := map[string]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %q: id %d is zero or repeated", path, p.Title, p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s: panel %q: gridPos %+v does not fit 24 columns", path, p.Title, g)
			}
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if other, ok := taken[cell{x, y}]; ok {
						t.Fatalf("%s: panels %q and %q overlap at x=%d y=%d", path, other, p.Title, x, y)
					}
					taken[cell{x, y}] = p.Title
				}
			}
			types[p.Type] = true
			if p.Type == "row" {
				rows = append(rows, p.Title)
				continue
			}
			if p.Description == "" {
				t.Errorf("%s: panel %q has no description", path, p.Title)
			}
			if p.Datasource == nil || dsTypes[p.Datasource.UID] != p.Datasource.Type {
				t.Errorf("%s: panel %q: datasource %+v is not a provisioned one", path, p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" {
					t.Errorf("%s: panel %q: a target without expr or refId", path, p.Title)
				}
				if tg.Datasource != nil && p.Datasource != nil && *tg.Datasource != *p.Datasource {
					t.Errorf("%s: panel %q: target datasource %+v differs from the panel's", path, p.Title, tg.Datasource)
				}
				if p.Type == "heatmap" && tg.Format != "heatmap" {
					t.Errorf("%s: heatmap %q: target format %q, want heatmap (buckets by le)", path, p.Title, tg.Format)
				}
			}
		}
		if path == filepath.Join("grafana", "dashboards", "sockmon.json") {
			want := []string{"Overview", "Connections", "Messages", "Latency", "Errors", "Resources", "Upstreams and circuit breakers", "Alerts", "Logs"}
			if !slices.Equal(rows, want) {
				t.Errorf("%s: rows %v, want %v", path, rows, want)
			}
			for _, typ := range []string{"stat", "timeseries", "heatmap", "table", "logs"} {
				if !types[typ] {
					t.Errorf("%s: no %s panel", path, typ)
				}
			}
		}
	}
}

// query is one PromQL expression and where it comes from.
type query struct {
	where, expr string
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// grafanaVars are the values the test gives Grafana's variables before
// parsing a query, as Grafana interpolates them before sending it.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "15s",
	"$instance", ".*",
)

// dashboardQueries returns the PromQL of every Prometheus panel and
// variable of the provisioned dashboards, Grafana variables interpolated.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	for _, path := range dashboardFiles(t) {
		d := loadDashboard(t, path)
		for _, v := range d.Templating.List {
			if v.Type != "query" || v.Datasource == nil || v.Datasource.Type != "prometheus" {
				continue
			}
			m := labelValuesRE.FindStringSubmatch(v.Query)
			if m == nil {
				t.Fatalf("%s: variable %s: query %q is not label_values(selector, label)", path, v.Name, v.Query)
			}
			qs = append(qs, query{fmt.Sprintf("%s variable %s", path, v.Name), m[1]})
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if p.Datasource == nil || p.Datasource.Type != "prometheus" {
					continue
				}
				e := grafanaVars.Replace(tg.Expr)
				if strings.Contains(e, "$") {
					t.Fatalf("%s: panel %q: unknown Grafana variable in %q", path, p.Title, tg.Expr)
				}
				qs = append(qs, query{fmt.Sprintf("%s panel %q %s", path, p.Title, tg.RefID), e})
			}
		}
	}
	return qs
}

// Every dashboard query is valid PromQL for Prometheus' parser: promtool
// checks them written as recording rules of a scratch rule file.
func TestGrafanaQueriesParse(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	qs := dashboardQueries(t)
	type rec struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rec
	for i, q := range qs {
		rules = append(rules, rec{Record: fmt.Sprintf("grafana_query_%d", i), Expr: q.expr})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "grafana", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "grafana-queries.yml")
	writeFile(t, path, string(b))
	out := run(t, promtool, "check", "rules", path)
	if !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", len(qs))) {
		t.Fatalf("promtool check rules on the dashboard queries:\n%s", out)
	}
}

// Series that Prometheus itself writes, so they are not in sockmon's
// /metrics: up (one per scrape target) and ALERTS (one per pending or
// firing alert of rules.yml).
var prometheusSeries = map[string]bool{"up": true, "ALERTS": true}

// Every metric name used by a dashboard panel or variable, a recording rule
// or an alert exists in the /metrics of a running sockmon (or is a series
// Prometheus writes, or a recording rule of rules.yml). So no panel is drawn
// from a name that does not exist: circuit breakers and sockmon's own alerts
// have no metrics yet, and no panel uses them.
func TestEveryMetricNameExists(t *testing.T) {
	// An upstream, so that the breaker and upstream series exist (nothing
	// needs to listen there).
	n := startSockmon(t, nil, "--upstream", "ai=http://127.0.0.1:9/rpc")
	fams := metricFamilies(t, n.control)

	var qs []query
	recorded := map[string]bool{}
	for _, r := range loadRules(t) {
		name := r.Record
		if name == "" {
			name = "alert " + r.Alert
		} else {
			recorded[r.Record] = true
		}
		qs = append(qs, query{"prometheus/rules.yml " + name, r.Expr})
	}
	qs = append(qs, dashboardQueries(t)...)

	exists := func(name string) bool {
		if prometheusSeries[name] || recorded[name] {
			return true
		}
		if typ, ok := fams[name]; ok && typ != "histogram" {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				if typ := fams[base]; typ == "histogram" || typ == "summary" && suf != "_bucket" {
					return true
				}
			}
		}
		return false
	}
	used := map[string]bool{}
	for _, q := range qs {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: no metric name found in %q", q.where, q.expr)
		}
		for _, name := range names {
			used[name] = true
			if !exists(name) {
				t.Errorf("%s: %s is not in sockmon's /metrics (nor a series Prometheus writes or a recording rule)", q.where, name)
			}
		}
	}
	var list []string
	for name := range used {
		list = append(list, name)
	}
	sort.Strings(list)
	t.Logf("%d queries use %d metric names: %s", len(qs), len(list), strings.Join(list, " "))
	// The names the operators asked for are all charted.
	for _, name := range []string{"sockmon_connections", "sockmon_message_duration_seconds_bucket", "sockmon_messages_received_total",
		"sockmon_messages_sent_total", "sockmon_message_errors_total", "sockmon_connections_rejected_total",
		"process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if !used[name] {
			t.Errorf("no panel or rule uses %s", name)
		}
	}
}

// PromQL words that are not metric names.
var (
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "atan2": true}
	// Followed by a parenthesised list of label names.
	promqlLabelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true}
	// Aggregation operators, which may be followed by "by (...)" before
	// their parenthesis.
	promqlAggregators = map[string]bool{"sum": true, "avg": true, "min": true, "max": true, "count": true,
		"stddev": true, "stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
		"group": true, "limitk": true, "limit_ratio": true}
)

// metricNames returns the metric names an expression selects, in order of
// appearance. It is a lexer, not a parser: the expressions are checked by
// promtool (TestPromtoolCheckRules, TestGrafanaQueriesParse). It skips
// strings, label matchers, range and subquery brackets, numbers and
// durations, label lists after by/without/on/ignoring/group_left/
// group_right, function names and keywords.
func metricNames(expr string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }
	// skipString returns the index after the string that starts at i.
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`':
				j++
			case expr[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string in %q", expr)
	}
	// skipBlock returns the index after the bracket that closes the one
	// at i, skipping strings inside.
	skipBlock := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(expr); {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				k, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = k
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	next := func(i int) byte {
		for ; i < len(expr); i++ {
			if c := expr[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return c
			}
		}
		return 0
	}
	nextIndex := func(i int) int {
		for ; i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])); i++ {
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := skipBlock(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipBlock(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case '0' <= c && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			lower := strings.ToLower(word)
			i = j
			switch n := next(j); {
			case promqlLabelLists[lower] && n == '(':
				k, err := skipBlock(nextIndex(j), '(', ')')
				if err != nil {
					return nil, err
				}
				i = k
			case n == '(':
				// A function or an aggregation.
			case promqlAggregators[lower] && (n == 'b' || n == 'w'):
				// sum by (...) (...)
			case promqlKeywords[lower]:
			default:
				if !seen[word] {
					seen[word] = true
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up{job="sockmon"} == 0`, []string{"up"}},
		{`histogram_quantile(0.99, sum by (job, le) (rate(x_bucket{job="sockmon",le=~"1|2"}[5m])))`, []string{"x_bucket"}},
		{`sum without (code) (rate(a_total[1m])) / on (instance) group_left (version) b{x='}{'}`, []string{"a_total", "b"}},
		{`a * 0 + 1073741824`, []string{"a"}},
		{`rate(a[5m:1m] offset 1h) > bool 0.5 and b or c unless d`, []string{"a", "b", "c", "d"}},
		{`sum(rate(a[1m])) by (le)`, []string{"a"}},
		{`count by (version, revision) (build_info) > Inf`, []string{"build_info"}},
		{`job:x:rate5m{job="a"} > 1e-3`, []string{"job:x:rate5m"}},
		{`topk(5, a) + vector(1)`, []string{"a"}},
	} {
		got, err := metricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %v, %v; want %v", c.expr, got, err, c.want)
		}
	}
	for _, bad := range []string{`a{x="}`, `rate(a[5m)`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q): no error", bad)
		}
	}
}

// Package deploy holds no code. Its tests check the deployment files under
// deploy/ with the tool that reads them where it runs here, or with that
// tool's own parser (the compose-spec loader, BuildKit's Dockerfile parser,
// the k8s.io/api types), and run Prometheus and nginx against real
// `sockmon serve` processes:
//
//	prometheus_test.go     prometheus/: promtool check config and rules,
//	                       promtool test rules, a real Prometheus scraping sockmon
//	alertmanager_test.go   alertmanager/: amtool check-config and amtool's router
//	grafana_test.go        grafana/: provisioning, the dashboard, every query
//	                       through promtool, every metric name of panels and
//	                       rules against a live /metrics
//	compose_test.go        docker-compose.monitoring.yml: the compose-spec
//	                       loader and the wiring to the other files; promtail/
//	dockerfile_test.go     Dockerfile: BuildKit's parser and build checks
//	kubernetes_test.go     kubernetes/: strict decoding into k8s.io/api types,
//	                       probes and termination against the serve defaults
//	nginx_test.go          nginx/: nginx -t, and a real nginx in front of
//	                       sockmon nodes
//	systemd_test.go        systemd/: a parse test, and systemd-analyze verify
//	                       and security when systemd-analyze is installed
//	haproxy_test.go        haproxy/: haproxy -c, and a real HAProxy in front of
//	                       two sockmon nodes with their agent-check
//
// control/haproxy_test.go also runs haproxy/haproxy.cfg (the health check
// alone, against nodes run in process).
//
// `make test-deps` installs promtool, prometheus, amtool and nginx from
// Debian. A test whose tool is missing fails when CI=true and is skipped,
// saying why, elsewhere.
package deploy

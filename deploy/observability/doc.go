// Package observability holds Extagram's monitoring: the Prometheus scrape
// configurations (prometheus.yml for Compose, prometheus-kubernetes.yml for
// the Kubernetes base), the recording and alert rules with their promtool
// unit tests (rules/), Alertmanager's routing to Telegram
// (alertmanager.yml, templates/) and Grafana's provisioning and dashboard
// (grafana/). Its tests run promtool and amtool on those files, check that
// every alert is tested, and that the dashboard's queries parse; render/
// draws the dashboard from a live Prometheus for the README's picture.
package observability

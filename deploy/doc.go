// Package deploy holds Moim's deployment files (Prometheus, alert rules,
// Grafana provisioning and dashboard, the nginx load balancer, the secrets
// script) and, in its tests, the checks that tie them to the repository's
// Dockerfile, docker-compose.yml and docker-swarm.yml: the stacks parsed by
// the docker tools, the Prometheus files by promtool, and every PromQL
// expression run by a real Prometheus against two live nodes. It has no
// Go code of its own.
package deploy

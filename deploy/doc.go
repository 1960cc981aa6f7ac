// Package deploy holds what runs Extagram outside `go run`: the build
// script shared by the Dockerfile and its test (build.sh), the MySQL account
// setup of S7 (mysql/initdb.d) and the Kubernetes base (kubernetes/). Its
// tests read those files together with the repository's Dockerfile,
// docker-compose.yml and .env.example, and check the deployment's topology:
// the seed's S1..S7 roles, the DNS names the edge balances over, shared
// volumes, health checks, start order, hardening, and that no secret is
// written down anywhere.
package deploy

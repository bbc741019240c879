// Package load holds the pieces of the load benchmark (bench/cmd/loadbench) that can be
// tested on their own: the gRPC frame and CheckRequest encoders, the /proc parsers for
// CPU time and peak RSS, the parsers of h2load's and ghz's reports, the protoset that
// ghz reads, and a small h2c gRPC load generator for request sets that h2load cannot
// cycle through (h2load posts one fixed body).
//
// It is benchmark code: it is not imported by the server and makes no promise of a
// stable API.
package load

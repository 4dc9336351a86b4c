//go:build unix

package pgtest

// PIDs lists the cluster's processes now (the postmaster, its backends
// and workers), for benchmarks that measure what PostgreSQL itself costs.
func (c *Cluster) PIDs() []int { return c.backends() }

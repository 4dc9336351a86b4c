package protocol

// RunReport is GET /v1/runs/{id}/report: the run and every deployment with
// its end (the CAU report).
type RunReport struct {
	Run         Run          `json:"run"`
	Deployments []Deployment `json:"deployments"`
}

package pack

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	sha := strings.Repeat("a", 64)
	art := func(path string, size int64, sum string) string {
		return `{"path": "` + path + `", "size": ` + strconv.FormatInt(size, 10) + `, "sha256": "` + sum + `"}`
	}
	doc := func(version, floor, artifacts string) string {
		s := `{"version": "` + version + `", "released": "2026-01-02T03:04:05Z", `
		if floor != "" {
			s += `"floor": "` + floor + `", `
		}
		return s + `"artifacts": ` + artifacts + `}`
	}
	good := `{"linux/amd64": {"agent": ` + art("linux_amd64/molt-agent", 5, sha) + `}}`
	for _, tc := range []struct {
		name, in, err string
	}{
		{"minimal", doc("1.5.0", "", good), ""},
		{"floor equal to version", doc("1.5.0", "1.5.0", good), ""},
		{"url artifact", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("https://cdn.example.com/a", 5, sha)+`}}`), ""},
		{"unknown field", `{"version": "1.5.0", "extra": 1}`, `unknown field "extra"`},
		{"trailing data", doc("1.5.0", "", good) + ` {}`, "trailing data"},
		{"not json", `version: 1.5.0`, "invalid character"},
		{"bad version", doc("1.5.0/..", "", good), "is not a valid version"},
		{"dotdot version", doc("1..5", "", good), "is not a valid version"},
		{"bad floor", doc("1.5.0", "-1", good), `floor "-1" is not a valid version`},
		{"floor above version", doc("1.5.0", "1.6.0", good), "floor 1.6.0 is above version 1.5.0"},
		{"no artifacts", doc("1.5.0", "", `{}`), "no artifacts"},
		{"bad platform", doc("1.5.0", "", `{"linux": {"agent": `+art("a", 5, sha)+`}}`), "is not goos/goarch"},
		{"no agent", doc("1.5.0", "", `{"linux/amd64": {"supervisor": `+art("a", 5, sha)+`}}`), "no agent artifact"},
		{"unknown role", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", 5, sha)+`, "tool": `+art("b", 5, sha)+`}}`), `unknown role "tool"`},
		{"empty file", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", 0, sha)+`}}`), "size 0 out of range"},
		{"huge file", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", MaxArtifactSize+1, sha)+`}}`), "out of range"},
		{"bad sha", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", 5, strings.ToUpper(sha))+`}}`), "is not 64 lowercase hex digits"},
		{"escaping path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("../a", 5, sha)+`}}`), `path "../a" escapes the pack`},
		{"absolute path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("/a", 5, sha)+`}}`), "escapes the pack"},
		{"backslash path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art(`a\\\\b`, 5, sha)+`}}`), "escapes the pack"},
		{"unclean path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a/./b", 5, sha)+`}}`), "escapes the pack"},
		{"too big", `{"version": "` + strings.Repeat(" ", MaxManifestSize) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.in))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Version != "1.5.0" {
					t.Fatalf("version %q", m.Version)
				}
				return
			}
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want ErrBadManifest containing %q", err, tc.err)
			}
		})
	}
}

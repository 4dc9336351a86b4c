package protocol

import (
	"sort"
	"testing"
)

func TestEventCatalogueUnique(t *testing.T) {
	ids := map[int]bool{}
	names := map[string]bool{}
	for _, e := range EventCatalogue {
		if ids[e.ID] || names[e.Name] {
			t.Errorf("event %d %q is listed twice", e.ID, e.Name)
		}
		ids[e.ID], names[e.Name] = true, true
		if e.Description == "" {
			t.Errorf("event %d has no description", e.ID)
		}
	}
	if !sort.SliceIsSorted(EventCatalogue, func(i, j int) bool { return EventCatalogue[i].ID < EventCatalogue[j].ID }) {
		t.Error("EventCatalogue is not ordered by id")
	}
	for id, name := range map[int]string{264: "upgrade_requested", 277: "activation_upgrade_skipped", 706: "upgraded", 707: "upgrade_failed"} {
		if EventName(id) != name {
			t.Errorf("event %d is %q, want %q", id, EventName(id), name)
		}
	}
}

func TestStates(t *testing.T) {
	for _, s := range DeploymentStates {
		if InProgress(s) && Terminal(s) {
			t.Errorf("%s is both in progress and terminal", s)
		}
	}
	if RoleRank(RoleViewer) >= RoleRank(RoleOperator) || RoleRank(RoleOperator) >= RoleRank(RoleAdmin) || RoleRank("root") != 0 {
		t.Error("role order is wrong")
	}
}

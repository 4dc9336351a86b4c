package window

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want is the canonical form
	}{
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "Mon-Fri 01:00-05:00 Europe/Berlin"},
		{"Mon,Wed,Fri 01:00-05:00", "Mon,Wed,Fri 01:00-05:00 UTC"},
		{"Sat-Sun 00:00-24:00", "Sat-Sun 00:00-24:00 UTC"},
		{"Fri-Mon 22:00-04:00 UTC", "Fri-Mon 22:00-04:00 UTC"},
		{"Sun-Mon,Wed 01:00-02:00", "Wed,Sun-Mon 01:00-02:00 UTC"},
		{"daily 02:00-03:00", "daily 02:00-03:00 UTC"},
		{"* 02:00-03:00", "daily 02:00-03:00 UTC"},
		{"Mon-Sun 02:00-03:00", "daily 02:00-03:00 UTC"},
		{"Sat-Fri 02:00-03:00", "daily 02:00-03:00 UTC"},
		{"Mon-Mon 02:00-03:00", "Mon 02:00-03:00 UTC"},
		{"mon-FRI 01:00-05:00 utc", "Mon-Fri 01:00-05:00 UTC"},
		{"Monday-Friday 01:00-05:00", "Mon-Fri 01:00-05:00 UTC"},
		{"Monday,tuesday 01:00-05:00", "Mon-Tue 01:00-05:00 UTC"},
		{"Mon,Mon,Tue 01:00-05:00", "Mon-Tue 01:00-05:00 UTC"},
		{"Mon, Wed 01:00-05:00", "Mon,Wed 01:00-05:00 UTC"},
		{"Mon - Fri 01:00 - 05:00 Europe/Berlin", "Mon-Fri 01:00-05:00 Europe/Berlin"},
		{"mon - fri 01:00 - 05:00", "Mon-Fri 01:00-05:00 UTC"},
		{"  Tue\t03:00-04:00   America/New_York  ", "Tue 03:00-04:00 America/New_York"},
		{"Fri 22:00-00:00", "Fri 22:00-24:00 UTC"},
		{"Fri 00:00-00:00", "Fri 00:00-24:00 UTC"},
		{"Sun 23:59-00:01", "Sun 23:59-00:01 UTC"},
		{"Mon 01:00-02:00 Etc/GMT+5", "Mon 01:00-02:00 Etc/GMT+5"},
		{
			"Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin",
			"Sat-Sun 00:00-24:00 UTC; Mon-Fri 01:00-05:00 Europe/Berlin",
		},
		{"Mon 01:00-02:00;Tue 01:00-02:00", "Mon 01:00-02:00 UTC; Tue 01:00-02:00 UTC"},
		{"", ""},
		{"   ", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			w, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got := w.String(); got != tc.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
			again, err := Parse(w.String())
			if err != nil {
				t.Fatalf("Parse(%q) of the canonical form: %v", w.String(), err)
			}
			if !again.Equal(w) {
				t.Errorf("round trip of %q: got %q", tc.in, again)
			}
			if w.IsZero() != (tc.want == "") {
				t.Errorf("Parse(%q).IsZero() = %v", tc.in, w.IsZero())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const eg = `e.g. "Mon-Fri 01:00-05:00 Europe/Berlin"`
	for _, tc := range []struct{ in, want string }{
		{"Mon-Fry 01:00-05:00", `window "Mon-Fry 01:00-05:00": unknown day "Fry" (days are Mon..Sun, ` + eg + `)`},
		{"Mo 01:00-05:00", `window "Mo 01:00-05:00": unknown day "Mo" (days are Mon..Sun, ` + eg + `)`},
		{"Mon,,Fri 01:00-05:00", `window "Mon,,Fri 01:00-05:00": empty day in "Mon,,Fri" (write days as Mon,Wed,Fri or Mon-Fri, ` + eg + `)`},
		{"Mon-Tue-Wed 01:00-05:00", `window "Mon-Tue-Wed 01:00-05:00": unknown day "Tue-Wed" (days are Mon..Sun, ` + eg + `)`},
		{"01:00-05:00 Europe/Berlin", `window "01:00-05:00 Europe/Berlin": missing days before "01:00-05:00" (write "daily 01:00-05:00" for every day, ` + eg + `)`},
		{"Mon-Fri", `window "Mon-Fri": missing time range HH:MM-HH:MM (` + eg + `)`},
		{"Mon-Fri Europe/Berlin", `window "Mon-Fri Europe/Berlin": missing time range HH:MM-HH:MM (` + eg + `)`},
		{"Mon 01:00", `window "Mon 01:00": bad time range "01:00" (write HH:MM-HH:MM, ` + eg + `)`},
		{"Mon 01:00-02:00-03:00", `window "Mon 01:00-02:00-03:00": bad time range "01:00-02:00-03:00" (write HH:MM-HH:MM, ` + eg + `)`},
		{"Mon 1:00-5:00", `window "Mon 1:00-5:00": bad time "1:00" (write HH:MM from 00:00 to 23:59, or 24:00 as an end, ` + eg + `)`},
		{"Mon 0100-0500", `window "Mon 0100-0500": bad time "0100" (write HH:MM from 00:00 to 23:59, or 24:00 as an end, ` + eg + `)`},
		{"Mon 25:00-26:00", `window "Mon 25:00-26:00": bad time "25:00" (write HH:MM from 00:00 to 23:59, or 24:00 as an end, ` + eg + `)`},
		{"Mon 01:60-02:00", `window "Mon 01:60-02:00": bad time "01:60" (write HH:MM from 00:00 to 23:59, or 24:00 as an end, ` + eg + `)`},
		{"Mon 23:00-24:01", `window "Mon 23:00-24:01": bad time "24:01" (write HH:MM from 00:00 to 23:59, or 24:00 as an end, ` + eg + `)`},
		{"Mon 24:00-01:00", `window "Mon 24:00-01:00": bad start time "24:00" (24:00 may only end a span; write 00:00, ` + eg + `)`},
		{"Mon 03:00-03:00", `window "Mon 03:00-03:00": empty time range "03:00-03:00" (start equals end; for the whole day write "00:00-24:00")`},
		{"Mon 01:00-05:00 Europe/Berln", `window "Mon 01:00-05:00 Europe/Berln": unknown time zone "Europe/Berln" (use an IANA name, case matters, e.g. "Europe/Berlin", "America/New_York" or "UTC")`},
		{"Mon 01:00-05:00 europe/berlin", `window "Mon 01:00-05:00 europe/berlin": unknown time zone "europe/berlin" (use an IANA name, case matters, e.g. "Europe/Berlin", "America/New_York" or "UTC")`},
		{"Mon 01:00-05:00 +01:00", `window "Mon 01:00-05:00 +01:00": unknown time zone "+01:00" (use an IANA name, case matters, e.g. "Europe/Berlin", "America/New_York" or "UTC")`},
		{"Mon 01:00-05:00 Local", `window "Mon 01:00-05:00 Local": time zone "Local" is not allowed (hosts differ; name the zone, e.g. "Europe/Berlin" or "UTC")`},
		{"Mon 01:00-05:00 Europe/Berlin UTC", `window "Mon 01:00-05:00 Europe/Berlin UTC": unexpected "UTC" after the time zone (` + eg + `)`},
		{"Mon 01:00-02:00;", `window "Mon 01:00-02:00;": empty span (spans are separated by ";", e.g. "Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin")`},
		{"Sat-Sun 00:00-24:00; Mon-Fry 01:00-05:00", `window "Mon-Fry 01:00-05:00": unknown day "Fry" (days are Mon..Sun, ` + eg + `)`},
		{strings.Repeat(" ", 257), `window is too long: 257 bytes, at most 256`},
		{strings.Repeat("*;", 16) + "*", `window has 17 spans, at most 16`},
		// 12 bytes per span as written, 23 in canonical form.
		{strings.TrimSuffix(strings.Repeat("* 01:00-02:00;", 16), ";"), `window is too long: 366 bytes when written out in full, at most 256`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			w, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error %q", tc.in, w, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Parse(%q) error\n got: %s\nwant: %s", tc.in, err, tc.want)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	a, _ := Parse("Mon 01:00-02:00 Europe/Berlin; Tue 01:00-02:00")
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"Mon 01:00-02:00 Europe/Berlin; Tue 01:00-02:00 UTC", true},
		{"monday 01:00 - 02:00 Europe/Berlin;Tue 01:00-02:00", true},
		{"Tue 01:00-02:00; Mon 01:00-02:00 Europe/Berlin", false},
		{"Mon 01:00-02:00 Europe/Paris; Tue 01:00-02:00", false},
		{"Mon 01:00-02:01 Europe/Berlin; Tue 01:00-02:00", false},
		{"Mon 01:00-02:00 Europe/Berlin", false},
		{"", false},
	} {
		b, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Equal(b); got != tc.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", a, tc.in, got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	type settings struct {
		Window Window `json:"window"`
	}
	var s settings
	if err := json.Unmarshal([]byte(`{"window":"mon-fri 01:00-05:00 Europe/Berlin"}`), &s); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"window":"Mon-Fri 01:00-05:00 Europe/Berlin"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	err = json.Unmarshal([]byte(`{"window":"Mon-Fry 01:00-05:00"}`), &s)
	if err == nil || !strings.Contains(err.Error(), `unknown day "Fry"`) {
		t.Errorf("unmarshal of a bad window: %v, want the unknown day", err)
	}
}

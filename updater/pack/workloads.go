package pack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/moltfleet/molt/workload/spec"
)

// PackYAMLName is the file in the build directory that holds the specs
// of the workloads (molt pack build --workloads names another one).
const PackYAMLName = "pack.yaml"

// maxPackYAML bounds pack.yaml: 16 specs of at most 16 KiB each, as YAML.
const maxPackYAML = 1 << 20

// packYAML is pack.yaml.
type packYAML struct {
	Workloads []yamlWorkload `yaml:"workloads"`
}

// yamlWorkload is one entry of pack.yaml: a spec and, optionally, the
// platforms that carry it.
type yamlWorkload struct {
	spec.Spec `yaml:",inline"`
	Platforms []string `yaml:"platforms"`
}

// workloadTree is one workload of one platform, as found in the build
// directory: its spec (the command adjusted for Windows) and its files.
type workloadTree struct {
	w    spec.Workload // SHA-256s are placeholders until the files are packed
	srcs []string      // the files' sources, in w.Files' order
}

// placeholderSHA256 stands for a file's hash while the spec and the tree
// are checked, before anything is read or written.
var placeholderSHA256 = strings.Repeat("0", 64)

// loadPackYAML reads the workloads' specs. An unknown key is an error that
// names it and its line.
func loadPackYAML(file string) ([]yamlWorkload, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPackYAML+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPackYAML {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxPackYAML)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var py packYAML
	if err := dec.Decode(&py); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", file, yamlError(err))
	}
	seen := map[string]bool{}
	for i, w := range py.Workloads {
		if w.Name == "" {
			return nil, fmt.Errorf("%s: workloads[%d]: no name", file, i)
		}
		if !spec.ValidName(w.Name) {
			return nil, fmt.Errorf("%s: workload %q: not a workload name (1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit)", file, w.Name)
		}
		if seen[w.Name] {
			return nil, fmt.Errorf("%s: workload %q is named twice", file, w.Name)
		}
		seen[w.Name] = true
		for _, p := range w.Platforms {
			if !platformRe.MatchString(p) {
				return nil, fmt.Errorf("%s: workload %q: platform %q is not goos/goarch", file, w.Name, p)
			}
		}
	}
	return py.Workloads, nil
}

var yamlFieldRe = regexp.MustCompile(`^(line \d+): field (\S+) not found in type \S+$`)

// yamlError makes yaml.v3's errors one line: the first problem, an
// unknown key named as such.
func yamlError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if m := yamlFieldRe.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("%s: unknown key %q", m[1], m[2])
		}
		if len(te.Errors) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(te.Errors)-1)
		}
		return msg
	}
	return strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", " ")
}

// findWorkloads pairs the specs of pack.yaml with the trees
// <goos>_<goarch>/workloads/<name>/ of the platforms being built, and
// checks every one, so that nothing is written for a bad one. A tree
// without a spec, a spec without a tree on a platform it names, and any
// file that is not a regular file at a clean path are errors.
func findWorkloads(opts BuildOptions, plats []platformFiles) (map[string][]workloadTree, error) {
	file := opts.Workloads
	var specs []yamlWorkload
	if file == "" {
		file = filepath.Join(opts.BinDir, PackYAMLName)
		if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) {
			file = ""
		}
	}
	if file != "" {
		var err error
		if specs, err = loadPackYAML(file); err != nil {
			return nil, err
		}
	}
	yamlName := PackYAMLName
	if file != "" {
		yamlName = filepath.Base(file)
	}
	built := map[string]bool{}
	for _, p := range plats {
		built[p.platform] = true
	}
	// trees[platform][name]: the directories that exist.
	trees := map[string]map[string]string{}
	for _, p := range plats {
		root := filepath.Join(opts.BinDir, p.dir, "workloads")
		entries, err := os.ReadDir(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		trees[p.platform] = map[string]string{}
		for _, e := range entries {
			rel := p.dir + "/workloads/" + e.Name()
			if !e.IsDir() {
				return nil, fmt.Errorf("%s: not a directory (each workload is a directory workloads/<name>/)", rel)
			}
			if !spec.ValidName(e.Name()) {
				return nil, fmt.Errorf("%s: %q is not a workload name (1 to 32 of a-z, 0-9, _ and -)", rel, e.Name())
			}
			if !slices.ContainsFunc(specs, func(w yamlWorkload) bool { return w.Name == e.Name() }) {
				return nil, fmt.Errorf("%s has no spec in %s", rel, yamlName)
			}
			trees[p.platform][e.Name()] = filepath.Join(root, e.Name())
		}
	}
	out := map[string][]workloadTree{}
	for _, y := range specs {
		plist := y.Platforms
		if len(plist) == 0 {
			for _, p := range plats {
				if _, ok := trees[p.platform][y.Name]; ok {
					plist = append(plist, p.platform)
				}
			}
			if len(plist) == 0 {
				if len(opts.Platforms) > 0 {
					continue // its platforms are not asked for in this build
				}
				return nil, fmt.Errorf("%s: workload %q: no platform directory has workloads/%s/", yamlName, y.Name, y.Name)
			}
		} else {
			for _, p := range plats {
				if _, ok := trees[p.platform][y.Name]; ok && !slices.Contains(plist, p.platform) {
					return nil, fmt.Errorf("%s/workloads/%s: %s is not among the platforms of %q in %s", p.dir, y.Name, p.platform, y.Name, yamlName)
				}
			}
		}
		for _, plat := range plist {
			if !built[plat] {
				if len(opts.Platforms) > 0 {
					continue // not asked for in this build
				}
				return nil, fmt.Errorf("%s: workload %q: platform %s has no directory %s in %s", yamlName, y.Name, plat, strings.Replace(plat, "/", "_", 1), opts.BinDir)
			}
			dir, ok := trees[plat][y.Name]
			if !ok {
				return nil, fmt.Errorf("%s: workload %q: no %s/workloads/%s/ in %s", yamlName, y.Name, strings.Replace(plat, "/", "_", 1), y.Name, opts.BinDir)
			}
			t, err := walkWorkload(plat, dir, y.Spec)
			if err != nil {
				return nil, err
			}
			out[plat] = append(out[plat], t)
		}
	}
	for _, p := range plats {
		plat, ts := p.platform, out[p.platform]
		ws := make([]spec.Workload, len(ts))
		for i, t := range ts {
			ws[i] = t.w
		}
		if err := spec.CheckAll(ws); err != nil {
			return nil, fmt.Errorf("%s: %w", plat, err)
		}
	}
	return out, nil
}

// walkWorkload lists one workload tree: regular files and directories
// only, at clean paths. A file whose owner may execute it gets 0755, any
// other 0644. On windows/* a command without ".exe" finds the ".exe",
// and the command is executable whatever its bits (Windows has none).
func walkWorkload(plat, dir string, s spec.Spec) (workloadTree, error) {
	t := workloadTree{w: spec.Workload{Spec: s}}
	goos, _, _ := strings.Cut(plat, "/")
	shown := func(rel string) string {
		return strings.Replace(plat, "/", "_", 1) + "/workloads/" + s.Name + "/" + rel
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := d.Name()
		if strings.Contains(name, `\`) || name == ".." {
			return fmt.Errorf("%s: a name with a backslash or \"..\" is not allowed", shown(filepath.ToSlash(rel)))
		}
		rel = filepath.ToSlash(rel)
		if !spec.SafePath(rel) {
			return fmt.Errorf("%s: not a clean relative path (no \"..\", \":\", backslash or control character)", shown(rel))
		}
		switch typ := d.Type(); {
		case typ.IsDir():
			return nil
		case typ&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: a symbolic link (a workload holds regular files and directories only)", shown(rel))
		case !typ.IsRegular():
			return fmt.Errorf("%s: not a regular file (%s)", shown(rel), typ.Type())
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if st.Size() > spec.MaxFileSize {
			return fmt.Errorf("%s: %w: %d bytes, at most %d", shown(rel), ErrTooLarge, st.Size(), int64(spec.MaxFileSize))
		}
		if len(t.w.Files) >= spec.MaxFiles {
			return fmt.Errorf("workloads/%s: %w: more than %d files", s.Name, ErrTooLarge, spec.MaxFiles)
		}
		mode := "0644"
		if st.Mode().Perm()&0o100 != 0 {
			mode = "0755"
		}
		t.w.Files = append(t.w.Files, spec.File{Path: rel, Size: st.Size(), SHA256: placeholderSHA256, Mode: mode})
		t.srcs = append(t.srcs, p)
		return nil
	})
	if err != nil {
		return t, err
	}
	if goos == "windows" {
		if _, ok := t.w.File(s.Command); !ok {
			if _, ok := t.w.File(s.Command + ".exe"); ok {
				t.w.Spec.Command = s.Command + ".exe"
			}
		}
		for i := range t.w.Files {
			if t.w.Files[i].Path == t.w.Spec.Command {
				t.w.Files[i].Mode = "0755"
			}
		}
	}
	// Sorted by path, not by walk order, so the manifest and the zip list
	// files the same way on every build.
	idx := make([]int, len(t.w.Files))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(t.w.Files[a].Path, t.w.Files[b].Path) })
	files := make([]spec.File, len(idx))
	srcs := make([]string, len(idx))
	for i, j := range idx {
		files[i], srcs[i] = t.w.Files[j], t.srcs[j]
	}
	t.w.Files, t.srcs = files, srcs
	return t, nil
}

package gobuild

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

var trees sync.Map // root -> *treeOnce

type treeOnce struct {
	once sync.Once
	sum  string
	err  error
}

// treeHash digests the module's source tree at root (paths, modes and
// contents of every file but .git, dist/ and what the top-level
// .gitignore names), once per process: a change to any source, go.mod,
// go.sum or embedded asset makes a new generation of the cache.
func treeHash(root string) (string, error) {
	v, _ := trees.LoadOrStore(root, &treeOnce{})
	t := v.(*treeOnce)
	t.once.Do(func() { t.sum, t.err = hashTree(root) })
	return t.sum, t.err
}

func hashTree(root string) (string, error) {
	ign, err := readIgnore(filepath.Join(root, ".gitignore"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel == ".git" || rel == "dist" || ign.match(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "L %q %q\n", rel, target)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "F %q %o %x\n", rel, fi.Mode().Perm()&0o111, fh.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// ignore is the simple subset of .gitignore that the module's own file
// uses: "/name" (top level only), "name/" (directories), and shell
// patterns matched against the base name.
type ignore []string

func readIgnore(path string) (ignore, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ig ignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!") {
			continue
		}
		ig = append(ig, l)
	}
	return ig, sc.Err()
}

func (ig ignore) match(rel string, dir bool) bool {
	base := rel[strings.LastIndex(rel, "/")+1:]
	for _, p := range ig {
		if strings.HasSuffix(p, "/") {
			if !dir {
				continue
			}
			p = strings.TrimSuffix(p, "/")
		}
		if anchored, ok := strings.CutPrefix(p, "/"); ok {
			if m, _ := filepath.Match(anchored, rel); m {
				return true
			}
			continue
		}
		if m, _ := filepath.Match(p, base); m {
			return true
		}
	}
	return false
}

//go:build unix

package console_test

import "strings"

// a11yJS lists what keeps a page from being usable by keyboard and screen
// reader, or readable: a visible control without a label, a button or
// link without a name, a page without exactly one h1, a table header
// without scope, and text whose contrast with its background is below
// WCAG AA (4.5:1; 3:1 for large text).
const a11yJS = `(() => {
  const out = [];
  const shown = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
  const short = (el) => el.outerHTML.replace(/\s+/g, ' ').slice(0, 140);
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!shown(el)) continue;
    const lab = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]')) || el.closest('label');
    if (!lab && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) out.push('control without a label: ' + short(el));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!shown(el)) continue;
    if (!((el.innerText || '').trim() || el.getAttribute('aria-label') || el.getAttribute('title'))) out.push('no accessible name: ' + short(el));
  }
  const h1 = [...document.querySelectorAll('main h1, dialog[open] h1')].filter(shown);
  if (h1.length !== 1) out.push(h1.length + ' visible h1 headings (want 1)');
  for (const th of document.querySelectorAll('thead th')) {
    if (shown(th) && th.getAttribute('scope') !== 'col') out.push('table header without scope=col: ' + short(th));
  }
  const rgb = (s) => { const m = s.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0.5) return c; } return [255, 255, 255]; };
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (!shown(el) || checked > 2000) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || Number(cs.opacity) < 0.9) continue;
    if (el.closest('button:disabled, [aria-disabled=true]')) continue;
    checked++;
    const a = lum(rgb(cs.color)), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(cs.fontSize) >= 24 || (parseFloat(cs.fontSize) >= 18.66 && Number(cs.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) out.push('contrast ' + ratio.toFixed(2) + ':1 for "' + el.innerText.trim().slice(0, 40) + '" (' + cs.color + ' on ' + bg(el).join(',') + ')');
  }
  return out;
})()`

// checkA11y fails the test with every problem a11yJS finds on the page.
func (b *browser) checkA11y(page string) {
	b.t.Helper()
	var problems []string
	b.evalInto(a11yJS, &problems)
	if len(problems) > 0 {
		b.shot("a11y-" + safeName(page))
		b.t.Errorf("page %s: %d accessibility problems:\n  %s", page, len(problems), strings.Join(problems, "\n  "))
	}
}

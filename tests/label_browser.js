// tests/label_browser.js — drives the labelling web page (`rlhf-label serve`) in a real
// headless chromium through puppeteer-core, as an annotator would, for
// tests/t_label_browser.sh:
//
//   node tests/label_browser.js run MODE URL TOKEN ACTIONS.json   (MODE pair|thumbs|rank)
//     logs in (a wrong token first: the error shows), judges items by clicking the
//     buttons and by the keyboard shortcuts of /app.js (rank mode: places responses by
//     click and key with a tie and a take-back, the last one placed by the save, and
//     once by the place selects alone, as without the script), undoes one judgment (the item
//     comes back), judges it again, opens /progress; checks on the way that the hostile
//     strings of the first item show as text (no dialog opens, the only script is
//     /app.js) and that no page had a script error or a CSP violation. Writes the
//     actions in order to ACTIONS.json.
//   node tests/label_browser.js check LOG ACTIONS.json ANNOTATOR
//     the judgment log holds exactly those actions, in order, by ANNOTATOR (rankings
//     with exactly the places expected).
//
// Environment: PUPPETEER_DIR (the unpacked puppeteer-core package), CHROMIUM (the
// browser). Exit status: 0 ok, 1 a failed check (the reason on stderr), 3 the browser
// could not be started (the shell test reports SKIP with the reason).
'use strict';
const fs = require('fs');

function fail(msg) {
  console.error('label_browser: ' + msg);
  process.exit(1);
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

// click a selector (or press a key) and wait for the page it leads to
async function act(page, how) {
  const nav = page.waitForNavigation({ waitUntil: 'load' });
  if (how.key) await page.keyboard.press(how.key);
  else await page.click(how.click);
  await nav;
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

async function login(page, url, token) {
  const first = await page.goto(url, { waitUntil: 'load' });
  expect(first.status() === 401, 'GET / without a token: status ' + first.status());
  await page.type('#token', 'not-a-valid-token-at-all');
  await act(page, { click: '#login' });
  expect((await text(page, '#error')).includes('unknown token'), 'wrong token: no error shown');
  await page.type('#token', token);
  await act(page, { click: '#login' });
  expect(new URL(page.url()).pathname === '/', 'after login: at ' + page.url());
}

// the first item is hostile: its markup must be text on the page
async function checkHostile(page) {
  const shown = await page.$$eval('.response .text', (els) => els.map((e) => e.textContent).join('\n'));
  expect(shown.includes("<script>alert('pwned')</script>"), 'hostile response not shown as text: ' + shown);
  const scripts = await page.$$eval('script', (els) => els.map((e) => e.getAttribute('src')));
  expect(scripts.length === 1 && scripts[0] === '/app.js', 'scripts on the page: ' + JSON.stringify(scripts));
  expect((await page.$$('img')).length === 0, 'an <img> of the data became markup');
}

// rank mode: the steps before the save (clicks, keys, selects), which stay on the page;
// the order line must then read `order` (when given)
async function prepare(page, how) {
  for (const s of how.before || []) {
    if (s.key) await page.keyboard.press(s.key);
    else if (s.select) await page.select(s.select, s.value);
    else await page.click(s.click);
  }
  if (how.order !== undefined) {
    const shown = await text(page, '#order');
    expect(shown === how.order, 'order line "' + shown + '", expected "' + how.order + '"');
  }
}

// steps: [label, how] — judge the item on the page; 'undo' undoes and expects the
// previous item back
async function label(page, steps) {
  const actions = [];
  let last = null;
  for (const [lab, how] of steps) {
    const id = await text(page, '#item-id');
    await prepare(page, how);
    if (lab === 'undo') {
      await act(page, how);
      const back = await text(page, '#item-id');
      expect(back === last, 'after undo: item ' + back + ', expected ' + last);
      expect((await text(page, '#note')).startsWith('undone:'), 'after undo: no note');
      actions.push({ undo: last });
      continue;
    }
    await act(page, how);
    const note = await text(page, '#note');
    expect(note === 'saved: ' + lab + ' for item ' + id, 'after judging: note "' + note + '"');
    actions.push(how.ranks ? { id: id, label: lab, ranks: how.ranks } : { id: id, label: lab });
    last = id;
  }
  return actions;
}

const STEPS = {
  pair: [
    ['A', { click: '#judge-A' }],
    ['B', { click: '#judge-B' }],
    ['tie', { key: 't' }],
    ['undo', { click: '#undo' }],
    ['skip', { click: '#judge-skip' }],
  ],
  rank: [
    // 2 = 3 > 1, then Enter places the one left (4) last: places 3 1 1 4
    ['rank', { before: [{ click: '#place-2' }, { key: '=' }, { key: '3' }, { key: '1' }],
               order: 'order, best first: 2 = 3 > 1', key: 'Enter', ranks: '3,1,1,4' }],
    ['undo', { key: 'u' }],
    // the selects alone, as without the script: 1 > 2 = 3 > 4
    ['rank', { before: [{ select: '#r1', value: '1' }, { select: '#r2', value: '2' },
                        { select: '#r3', value: '2' }, { select: '#r4', value: '4' }],
               click: '#judge-rank', ranks: '1,2,2,4' }],
    ['skip', { key: 's' }],
    // 3, taken back, then 1 > 2, saved by click: 3 placed last: places 1 2 3
    ['rank', { before: [{ click: '#place-3' }, { key: 'Backspace' }, { click: '#place-1' }, { key: '2' }],
               order: 'order, best first: 1 > 2', click: '#judge-rank', ranks: '1,2,3' }],
  ],
  thumbs: [
    ['up', { click: '#judge-up' }],
    ['down', { key: 'n' }],
    ['undo', { key: 'u' }],
    ['skip', { key: 's' }],
  ],
};

async function run(mode, url, token, out) {
  const puppeteer = require(process.env.PUPPETEER_DIR);
  let browser;
  try {
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    });
  } catch (e) {
    console.error('label_browser: chromium did not start: ' + String(e.message).split('\n')[0]);
    process.exit(3);
  }
  const problems = [];
  try {
    const page = await browser.newPage();
    page.on('dialog', async (d) => {
      problems.push('a dialog opened: ' + d.message());
      await d.dismiss();
    });
    page.on('pageerror', (e) => problems.push('script error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/401/.test(m.text())) problems.push('console: ' + m.text());
    });
    await login(page, url, token);
    await checkHostile(page);
    const actions = await label(page, STEPS[mode]);
    await page.goto(url + 'progress', { waitUntil: 'load' });
    expect((await page.$$('#annotators tr')).length >= 2, '/progress: no annotator row');
    expect(problems.length === 0, problems.join('; '));
    fs.writeFileSync(out, JSON.stringify(actions));
    console.log('label_browser: ' + mode + ': ' + actions.length + ' actions by clicks and keys');
  } finally {
    await browser.close();
  }
}

function check(log, actionsFile, annotator) {
  const actions = JSON.parse(fs.readFileSync(actionsFile, 'utf8'));
  const recs = fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  expect(recs.length === actions.length, 'log has ' + recs.length + ' records, ' + actions.length + ' actions done');
  actions.forEach((a, i) => {
    const r = recs[i];
    expect(r.annotator === annotator, 'record ' + (i + 1) + ': annotator ' + r.annotator);
    if (a.undo !== undefined) expect(r.undo === a.undo, 'record ' + (i + 1) + ': not the undo of ' + a.undo);
    else expect(r.id === a.id && r.label === a.label && (a.ranks === undefined || (r.ranks || []).join() === a.ranks),
      'record ' + (i + 1) + ': ' + JSON.stringify(r) + ' for ' + JSON.stringify(a));
  });
  console.log('label_browser: the log holds the ' + actions.length + ' actions in order');
}

const [cmd, ...args] = process.argv.slice(2);
Promise.resolve()
  .then(() => (cmd === 'run' ? run(...args) : cmd === 'check' ? check(...args) : fail('usage: run|check ...')))
  .catch((e) => fail(e.message));

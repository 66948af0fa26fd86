// End-to-end test of the packaged extension in a real VS Code (code-server 4.100.3), driven by Debian's
// Chromium through playwright-core. One browser session; one code-server for:
//   problems       - the Problems panel lists the expected gradguard diagnostics (codes and lines)
//   interpreter    - gradguard.interpreter from User settings runs the server (the status item says so, once),
//                    and the settings editor's User tab lists the setting
//   hover          - the hover: the message once, the rule's why, the fix's title, a link; "Quick Fix..." visible
//   docsLink       - the hover's link and the Problems panel's code link open the local explanation (a preview)
//   quickfix       - "Replace with `torch.relu`" rewrites the file on disk and the diagnostic goes away; the
//                    Ctrl+. menu also offers "Disable GG202 for this file" and the fix-all
//   typing         - a bug typed into the editor gets its diagnostic within 2 s
//   lensStability  - a syntax error typed above a class: its code lens stays and the code does not move
//   notebook       - a buggy notebook cell shows the diagnostic on that cell
//   probeLens      - "Check gradient flow of all modules in this file": the lenses show each module's result,
//                    which an edit elsewhere keeps
//   watcher        - a pyproject.toml ignoring GG402 is applied to the open file at once; deleting it undoes that
//   workspaceMode  - gradguard.diagnosticMode "workspace": the Problems panel lists a GG101 of a file never
//                    opened (project/model.py, whose base class is an nn.Module in project/base.py); back to
//                    "openFilesOnly", the row goes
//   shapes         - the shape after each assignment of `forward` shows as an inlay hint, and the hover over a
//                    tensor says its shape, dtype and gradient status in one line
// then checks of the client itself (the last in a second code-server):
//   crash           - a killed server is restarted by the client and the diagnostics come back
//   restart         - "gradguard: Restart Server": the old server's normal exit is not logged as an error
//   explain         - "gradguard: Explain Rule" asks for a code and shows its explanation
//   badInterpreter  - pointing gradguard.interpreter at a missing file restarts the client, which says so;
//                     "Select Interpreter" runs the Python extension's picker, "Open Settings" shows the setting
//   trust           - in a second code-server with workspace trust on: restricted mode has diagnostics but
//                     no probe code lenses; granting trust restarts the server and the lenses appear
//
// node client/e2e/run.mjs --vsix dist/x.vsix --python /usr/bin/python3 --artifacts DIR [--screenshots docs/screenshots]
//   [--probe-python PYTHON_WITH_TORCH] [--only problems,hover,...] [--chromium /usr/bin/chromium] [--keep]
//
// Writes DIR/results.json ({scenarios: {name: {ok, detail, ...}}}), a screenshot per step, and the
// extension host and server logs. Exits 0 when every scenario passed, 1 otherwise, 2 on a setup failure.
// GRADGUARD_EDITOR_DEPS: where scripts/install-editor-deps.sh put code-server and playwright-core.

import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

// -- arguments ----------------------------------------------------------------------------------
function parseArgs(argv) {
  const args = { screenshots: undefined, chromium: '/usr/bin/chromium', keep: false };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'keep') args.keep = true;
    else args[key] = argv[++i];
  }
  for (const required of ['vsix', 'python', 'artifacts']) {
    if (!args[required]) {
      console.error(
        `usage: run.mjs --vsix FILE --python EXE --artifacts DIR [--screenshots DIR] (missing --${required})`,
      );
      process.exit(2);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const deps = process.env.GRADGUARD_EDITOR_DEPS || join(homedir(), '.cache', 'gradguard-editor');
const codeServer = join(deps, 'node_modules', '.bin', 'code-server');
const artifacts = resolve(args.artifacts);
const docsShots = args.screenshots ? resolve(args.screenshots) : undefined;

// -- the workspace: buggy PyTorch files ---------------------------------------------------------
// relu_bug.py line 12 is the GG202 finding whose quick fix is "Replace with `torch.relu`".
const RELU_BUG = `import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = torch.tanh(self.fc(x))
        h[h < 0] = 0
        return h * 2
`;
const RELU_FIXED = RELU_BUG.replace('        h[h < 0] = 0\n', '        h = torch.relu(h)\n');
const MUST_LIST = { code: 'GG202', line: 12 }; // the quick fix's finding

// typing_demo.py is clean; the test types a GG202 bug as the new line 8.
const TYPING_DEMO = `import torch
import torch.nn as nn


class Gate(nn.Module):
    def forward(self, x):
        g = torch.sigmoid(x)
        return g
`;
const TYPED_LINE = '        g[g < 0.5] = 0';
const TYPED_AT_LINE = 8;

// probe_demo.py: two modules for the probe's lenses, one with a layer forward never calls (lines 8 and 20).
const PROBE_DEMO = `import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 32)  # never called in forward
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(torch.relu(self.fc1(x)))


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(20, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))
`;

// train_loop.py: GG402 (zero_grad between backward and step), the issue's [tool.gradguard] example.
const TRAIN_LOOP = `import torch
import torch.nn as nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(10):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
`;
const TRAIN_LOOP_CODE = 'GG402';

// project/: never opened. model.py's Net has a fake backward (GG101 on line 10) because base.py's Base is
// an nn.Module: a finding across files, shown only in workspace mode.
const PROJECT_BASE = `import torch.nn as nn


class Base(nn.Module):
    pass
`;
const PROJECT_MODEL = `import torch
from base import Base


class Net(Base):
    def forward(self, x):
        return torch.relu(x)

    # autograd never calls this
    def backward(self, grad):
        return grad
`;
const PROJECT_BUG = { code: 'GG101', line: 10 };
// shapes_demo.py: the script's call gives forward its input shape; line 19's Linear was sized for 32x32
// images (GG501). The hover goes over `h` on line 16.
const SHAPES_DEMO = `import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(h, 2)
        h = torch.sigmoid(self.conv2(h))
        h = F.max_pool2d(h, 2)
        flat = torch.flatten(h, 1)
        return self.fc(flat)


model = ConvNet()
logits = model(torch.randn(8, 1, 28, 28))
`;
const SHAPE_HINTS = [': [8, 16, 28, 28]', ': [8, 16, 14, 14]', ': [8, 32, 14, 14]', ': [8, 32, 7, 7]', ': [8, 1568]'];
const SHAPE_HOVER = 'Tensor[8, 32, 14, 14] float32 · requires grad · saved by sigmoid (line 16)';

const NOTEBOOK_CELLS = [
  ['markdown', '# A notebook with an autograd bug'],
  ['code', 'import torch\nimport torch.nn as nn'],
  [
    'code',
    'class Squash(nn.Module):\n    def forward(self, x):\n        y = torch.tanh(x)\n        y[y < 0] = 0\n        return y',
  ],
];
const NOTEBOOK_BUG = { cell: 2, line: 4, code: 'GG202' }; // 0-based cell index, 1-based line in the cell

function notebookJson() {
  return JSON.stringify(
    {
      cells: NOTEBOOK_CELLS.map(([kind, text]) => ({
        cell_type: kind,
        metadata: {},
        source: text.split('\n').map((l, i, all) => (i < all.length - 1 ? `${l}\n` : l)),
        ...(kind === 'code' ? { execution_count: null, outputs: [] } : {}),
      })),
      metadata: {
        kernelspec: { display_name: 'Python 3', language: 'python', name: 'python3' },
        language_info: { name: 'python' },
      },
      nbformat: 4,
      nbformat_minor: 5,
    },
    null,
    1,
  );
}

// -- helpers -----------------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...parts) => console.log(`[e2e ${new Date().toISOString().slice(11, 23)}]`, ...parts);

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

async function waitFor(predicate, timeoutMs, what, intervalMs = 100) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    last = await predicate();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// Screenshots go to the artifacts at once, and those the docs show to --screenshots when their scenario passed.
const DOCS_SHOTS = new Set([
  '1-problems',
  '2-hover',
  '3-quickfix',
  '3-quickfix-applied',
  '4-typing',
  '5-notebook',
  '6-explain',
  '9-probe-lens',
  '12-shape-hover',
  '13-inlay-hints',
]);
const pendingShots = new Map();
async function shoot(page, name) {
  const buf = await page.screenshot({ caret: 'hide', animations: 'disabled' });
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(join(artifacts, `${name}.png`), buf);
  pendingShots.set(name, buf);
}

function publishShots(passed) {
  if (passed && docsShots) {
    mkdirSync(docsShots, { recursive: true });
    for (const [name, buf] of pendingShots) {
      if (!DOCS_SHOTS.has(name)) continue;
      const file = join(docsShots, `${name}.png`);
      // Unchanged pictures are left alone, so a passing run does not churn the committed ones.
      if (!existsSync(file) || !readFileSync(file).equals(buf)) writeFileSync(file, buf);
    }
  }
  pendingShots.clear();
}

/** Problems panel rows: [{code, line, column, text}] for marker rows (file rows have no "Ln"). */
async function problemRows(page) {
  const texts = await page.$$eval('.markers-panel .monaco-list-row', (els) => els.map((e) => e.textContent || ''));
  const rows = [];
  for (const text of texts) {
    const pos = /\[Ln (\d+), Col (\d+)\]/.exec(text);
    const code = /(GG\d{3})(?!\d)/.exec(text);
    if (pos) rows.push({ code: code ? code[1] : null, line: Number(pos[1]), column: Number(pos[2]), text });
  }
  return rows;
}

async function openProblems(page) {
  if (
    !(await page
      .locator('.markers-panel')
      .isVisible()
      .catch(() => false))
  ) {
    await page.keyboard.press('Control+Shift+M');
    await page.locator('.markers-panel').waitFor({ state: 'visible', timeout: 10000 });
  }
}

async function openFromExplorer(page, name) {
  const row = page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`);
  await row.waitFor({ timeout: 30000 });
  await row.dblclick();
  await page.locator(`.tabs-container .tab.active[aria-label*="${name}"]`).waitFor({ timeout: 15000 });
}

async function saveActiveEditor(page) {
  const dirty = page.locator('.tabs-container .tab.active.dirty');
  await page
    .locator('.editor-group-container.active .view-lines')
    .first()
    .click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+S');
  if (
    await dirty.waitFor({ state: 'detached', timeout: 3000 }).then(
      () => true,
      () => false,
    )
  )
    return;
  // Fall back on the command palette.
  await page.keyboard.press('F1');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type('File: Save');
  await page.locator('.quick-input-list .monaco-list-row[aria-label^="File: Save,"]').first().waitFor();
  await page.keyboard.press('Enter');
  await dirty.waitFor({ state: 'detached', timeout: 5000 });
}

/** The extension's status bar item says the server is running. */
async function waitServerReady(page, timeout = 60000) {
  await page.locator('.statusbar-item[aria-label^="gradguard ready"]').first().waitFor({ state: 'attached', timeout });
}

const SQUIGGLE = '.view-overlays [class*="squiggly-"]';

async function squiggles(page, scope = '.editor-group-container.active') {
  return page.locator(`${scope} ${SQUIGGLE}`).count();
}

// -- code-server ----------------------------------------------------------------------------------
function runDirs() {
  const run = join(artifacts, 'run');
  rmSync(run, { recursive: true, force: true });
  const dirs = {
    run,
    extensions: join(run, 'extensions'),
    userData: join(run, 'user-data'),
    workspace: join(run, 'workspace'),
    trustUserData: join(run, 'user-data-trust'),
    trustWorkspace: join(run, 'untrusted-workspace'),
    xdgConfig: join(run, 'xdg', 'config'),
    xdgData: join(run, 'xdg', 'data'),
    xdgCache: join(run, 'xdg', 'cache'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  return dirs;
}

function writeWorkspace(dirs) {
  writeFileSync(join(dirs.workspace, 'relu_bug.py'), RELU_BUG);
  writeFileSync(join(dirs.workspace, 'typing_demo.py'), TYPING_DEMO);
  writeFileSync(join(dirs.workspace, 'notebook.ipynb'), notebookJson());
  writeFileSync(join(dirs.workspace, 'probe_demo.py'), PROBE_DEMO);
  writeFileSync(join(dirs.workspace, 'train_loop.py'), TRAIN_LOOP);
  writeFileSync(join(dirs.workspace, 'shapes_demo.py'), SHAPES_DEMO);
  mkdirSync(join(dirs.userData, 'User'), { recursive: true });
  const settings = {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'telemetry.telemetryLevel': 'off',
    'extensions.ignoreRecommendations': true,
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'git.enabled': false,
    'files.autoSave': 'off',
    'editor.autoClosingBrackets': 'never',
    'editor.autoClosingQuotes': 'never',
    'editor.autoIndent': 'none',
    'editor.quickSuggestions': { other: false, comments: false, strings: false },
    'editor.suggestOnTriggerCharacters': false,
    'editor.acceptSuggestionOnEnter': 'off',
    'editor.hover.delay': 300,
    'editor.minimap.enabled': false,
    'notebook.output.textLineLimit': 10,
    // In User settings, as a user sets it: code-server's window is a remote one, where only settings
    // that are not machine(-overridable) are read from User settings.
    'gradguard.interpreter': args.python,
    'gradguard.importStrategy': 'useBundled',
  };
  writeFileSync(join(dirs.userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  // A second profile and folder for the workspace-trust check (fresh: no remembered trust decision).
  writeFileSync(join(dirs.trustWorkspace, 'relu_bug.py'), RELU_BUG);
  mkdirSync(join(dirs.trustUserData, 'User'), { recursive: true });
  writeFileSync(join(dirs.trustUserData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
}

function codeServerEnv(dirs) {
  return {
    ...process.env,
    // the probe runs modules with torch: the interpreter that has it (the server's may not)
    ...(args['probe-python'] ? { GRADGUARD_PROBE_PYTHON: args['probe-python'] } : {}),
    XDG_CONFIG_HOME: dirs.xdgConfig,
    XDG_DATA_HOME: dirs.xdgData,
    XDG_CACHE_HOME: dirs.xdgCache,
  };
}

async function installVsix(dirs) {
  const { stdout, stderr } = await execFileP(
    codeServer,
    ['--extensions-dir', dirs.extensions, '--user-data-dir', dirs.userData, '--install-extension', resolve(args.vsix)],
    { env: codeServerEnv(dirs), timeout: 120000 },
  );
  log('install-extension:', (stdout + stderr).trim().split('\n').slice(-1)[0]);
  const installed = readdirSync(dirs.extensions).filter((d) => d.startsWith('gradguard.gradguard-'));
  if (installed.length !== 1) throw new Error(`vsix did not install: ${readdirSync(dirs.extensions).join(', ')}`);
  const bundled = join(dirs.extensions, installed[0], 'bundled', 'libs', 'gradguard');
  if (!existsSync(bundled)) throw new Error(`the installed extension has no bundled server (${bundled})`);
  await installPythonStandIn(dirs);
  return join(dirs.extensions, installed[0]);
}

/**
 * A stand-in for the Python extension (ms-python.python), which cannot be downloaded here: it only
 * contributes `python.setInterpreter`, so the client's "Select Interpreter" button can be checked.
 */
async function installPythonStandIn(dirs) {
  const src = join(dirs.run, 'python-stand-in');
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, 'package.json'),
    JSON.stringify({
      name: 'python',
      publisher: 'ms-python',
      displayName: 'Python (test stand-in)',
      description: "A stand-in for the Python extension in gradguard's end-to-end test: only its interpreter picker.",
      version: '0.0.1',
      license: 'MIT',
      engines: { vscode: '^1.100.0' },
      main: './extension.js',
      activationEvents: ['onCommand:python.setInterpreter'],
      contributes: { commands: [{ command: 'python.setInterpreter', title: 'Python: Select Interpreter' }] },
    }),
  );
  writeFileSync(
    join(src, 'extension.js'),
    "const vscode = require('vscode');\n" +
      'exports.activate = (context) => context.subscriptions.push(vscode.commands.registerCommand(' +
      "'python.setInterpreter', () => vscode.window.showInformationMessage('Python stand-in: Select Interpreter was run')));\n",
  );
  writeFileSync(join(src, 'LICENSE'), 'MIT\n');
  const vsix = join(dirs.run, 'python-stand-in.vsix');
  const vsce = resolve('node_modules', '.bin', 'vsce');
  await execFileP(vsce, ['package', '--allow-missing-repository', '--skip-license', '--out', vsix], {
    cwd: src,
    timeout: 60000,
  });
  await execFileP(
    codeServer,
    ['--extensions-dir', dirs.extensions, '--user-data-dir', dirs.userData, '--install-extension', vsix],
    { env: codeServerEnv(dirs), timeout: 120000 },
  );
}

async function startCodeServer(
  dirs,
  port,
  { userData = dirs.userData, workspace = dirs.workspace, trust = false } = {},
) {
  const proc = spawn(
    codeServer,
    [
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--auth',
      'none',
      '--disable-telemetry',
      '--disable-update-check',
      ...(trust ? [] : ['--disable-workspace-trust']),
      '--disable-getting-started-override',
      '--extensions-dir',
      dirs.extensions,
      '--user-data-dir',
      userData,
      workspace,
    ],
    { env: codeServerEnv(dirs), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const logLines = [];
  proc.stdout.on('data', (d) => logLines.push(String(d)));
  proc.stderr.on('data', (d) => logLines.push(String(d)));
  proc.logLines = logLines;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`code-server exited: ${logLines.join('')}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`);
        return res.ok;
      } catch {
        return false;
      }
    },
    30000,
    'code-server /healthz',
    200,
  );
  return proc;
}

function stopCodeServer(proc) {
  if (!proc || proc.exitCode !== null) return;
  try {
    process.kill(-proc.pid, 'SIGTERM'); // its own process group: code-server, extension host, the server
  } catch {
    proc.kill('SIGTERM');
  }
}

function collectLogs(dirs) {
  const dest = join(artifacts, 'logs');
  rmSync(dest, { recursive: true, force: true });
  for (const [userData, name] of [
    [dirs.userData, 'main'],
    [dirs.trustUserData, 'trust'],
  ]) {
    const src = join(userData, 'logs');
    if (existsSync(src)) cpSync(src, join(dest, name), { recursive: true });
  }
  // The "gradguard" output channel (client log + server stderr) as one file, for a quick look.
  const found = [];
  const walk = (d) => {
    for (const entry of readdirSync(d)) {
      const p = join(d, entry);
      if (statSync(p).isDirectory()) walk(p);
      else if (/gradguard\.log$/.test(entry)) found.push(p);
    }
  };
  if (existsSync(dest)) walk(dest);
  writeFileSync(join(artifacts, 'gradguard-output.log'), found.map((p) => readFileSync(p, 'utf8')).join('\n'));
}

// -- scenarios ----------------------------------------------------------------------------------
/** What the bundled server's CLI reports for a file: [{code, line}] sorted like the Problems panel. */
async function cliFindings(extensionDir, file) {
  const { stdout } = await execFileP(
    args.python,
    ['-m', 'gradguard', 'check', '--format', 'json', '--exit-zero', file],
    { env: { ...process.env, PYTHONPATH: join(extensionDir, 'bundled', 'libs') }, cwd: dirname(file), timeout: 60000 },
  );
  return sortProblems(JSON.parse(stdout).map((f) => ({ code: f.code, line: f.line })));
}

function sortProblems(list) {
  return [...list].sort((a, b) => a.line - b.line || a.code.localeCompare(b.code));
}

async function scenarioProblems(page, ctx) {
  const expected = await cliFindings(ctx.extensionDir, join(ctx.dirs.workspace, 'relu_bug.py'));
  await openFromExplorer(page, 'relu_bug.py');
  await waitServerReady(page);
  ctx.readyMs = Date.now() - ctx.openedAt;
  await page.locator(`.editor-group-container.active ${SQUIGGLE}`).first().waitFor({ timeout: 45000 });
  ctx.firstDiagnosticMs = Date.now() - ctx.openedAt;
  await openProblems(page);
  await waitFor(async () => (await problemRows(page)).length >= expected.length, 10000, 'Problems panel rows');
  await sleep(500); // let any late diagnostic land before comparing the exact list
  const final = await problemRows(page);
  const got = sortProblems(final.map(({ code, line }) => ({ code, line })));
  await shoot(page, '1-problems');
  const same = JSON.stringify(got) === JSON.stringify(expected);
  const listsFixable = got.some((p) => p.code === MUST_LIST.code && p.line === MUST_LIST.line);
  return {
    ok: same && listsFixable && final.every((r) => r.text.includes('gradguard')),
    detail: `Problems panel lists ${JSON.stringify(got)}; the CLI reports ${JSON.stringify(expected)}; includes ${MUST_LIST.code} at line ${MUST_LIST.line}: ${listsFixable}`,
    expected,
    got,
    rows: final.map((r) => r.text),
  };
}

/** The rule's one-line why (`Rule.why`), as the bundled server knows it. */
async function ruleWhy(extensionDir, code) {
  const { stdout } = await execFileP(
    args.python,
    [
      '-c',
      `import sys; from gradguard.engine.rule import rule_class; sys.stdout.write(rule_class(${JSON.stringify(code)}).short_why())`,
    ],
    { env: { ...process.env, PYTHONPATH: join(extensionDir, 'bundled', 'libs') }, timeout: 60000 },
  );
  return stdout.replace(/[`*_]/g, '');
}

/** Hover over the first squiggle until the gradguard part is there; the hover widget's text parts. */
async function hoverSquiggle(page, wanted) {
  const squiggle = page.locator(`.editor-group-container.active ${SQUIGGLE}`).first();
  const box = await squiggle.boundingBox();
  if (!box) throw new Error('no squiggle on screen');
  let text = '';
  for (let attempt = 0; attempt < 3 && !text.includes(wanted); attempt++) {
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.move(box.x + box.width / 2 + 2, box.y + box.height / 2);
    await page
      .locator('.monaco-hover:not(.hidden)')
      .filter({ hasText: wanted })
      .first()
      .waitFor({ state: 'visible', timeout: 8000 })
      .catch(() => undefined);
    await sleep(400);
    text = (await page.locator('.monaco-hover:not(.hidden)').allTextContents()).join('\n');
  }
  return text;
}

/**
 * The hover over a finding: the message once (VS Code's own part), then gradguard's: the rule's why, the
 * fix's title and a link to the explanation; short enough that "Quick Fix..." shows without scrolling.
 */
async function scenarioHover(page, { extensionDir }) {
  const why = await ruleWhy(extensionDir, MUST_LIST.code);
  const text = await hoverSquiggle(page, 'Full explanation');
  const hover = page.locator('.monaco-hover:not(.hidden)').first();
  // gradguard's part is the markdown row holding the link
  const ours = hover.locator('.hover-row').filter({ hasText: 'Full explanation' }).first();
  const oursText = ((await ours.textContent().catch(() => '')) || '').trim();
  const message = (await problemRows(page)).find((r) => r.code === MUST_LIST.code)?.text || '';
  // the start of the diagnostic's message (the Problems row: message, then "gradguard(GG202)")
  const messageText = message.split('gradguard(')[0].trim().slice(0, 60);
  const timesMessage = messageText ? text.split(messageText).length - 1 : -1;
  // the status bar of the hover ("View Problem", "Quick Fix...") inside the hover's visible box
  const hoverBox = await hover.boundingBox();
  const quickFix = hover.locator('.action-container, .hover-row.status-bar a').filter({ hasText: 'Quick Fix' }).first();
  const fixBox = await quickFix.boundingBox().catch(() => null);
  const quickFixVisible = !!(
    hoverBox &&
    fixBox &&
    fixBox.y >= hoverBox.y &&
    fixBox.y + fixBox.height <= hoverBox.y + hoverBox.height + 1
  );
  await shoot(page, '2-hover');
  await page.mouse.move(5, 5);
  await page.keyboard.press('Escape');
  const checks = {
    why: text.replace(/[`*_]/g, '').includes(why),
    fixTitle: text.includes('Quick fix: Replace with torch.relu'),
    link: text.includes('Full explanation'),
    messageOnce: timesMessage === 1,
    short: oursText.length > 0 && oursText.length <= 600,
    quickFixVisible,
  };
  return {
    ok: Object.values(checks).every(Boolean),
    detail: `hover: ${JSON.stringify(checks)}; gradguard's part ${oursText.length} characters, whole hover ${text.length}`,
    hoverChars: oursText.length,
    wholeHoverChars: text.length,
    text: text.slice(0, 3000),
  };
}

/**
 * The explanation opens locally, as a preview, from the hover's link and from the Problems panel's code
 * link: no "open external website?" dialog, no web page.
 */
async function scenarioDocsLink(page) {
  const external = page.locator('.monaco-dialog-box').filter({ hasText: /external website|open the external/i });
  const closePreview = () => closeTab(page, 'GG202.md');
  await closePreview();
  await page.locator('.tabs-container .tab[aria-label*="relu_bug.py"]').first().click();
  // 1. the hover's "Full explanation" link
  await hoverSquiggle(page, 'Full explanation');
  const link = page.locator('.monaco-hover:not(.hidden) a').filter({ hasText: 'Full explanation' }).first();
  await link.click();
  const tab = page.locator('.tabs-container .tab[aria-label*="GG202.md"]');
  const fromHover = await tab
    .first()
    .waitFor({ timeout: 10000 })
    .then(
      () => true,
      () => false,
    );
  const rendered = fromHover && (await previewShows(page, 'GG202 masked-assignment'));
  await shoot(page, '10-docs-link');
  await closePreview();
  await page.mouse.move(5, 5);
  await page.keyboard.press('Escape');
  // 2. the code link of the Problems panel row
  await openProblems(page);
  const row = page.locator('.markers-panel .monaco-list-row').filter({ hasText: MUST_LIST.code }).first();
  const codeLink = row.locator('a.monaco-link, a.code-link, .code-link').first();
  const href = await codeLink.getAttribute('href').catch(() => null);
  await codeLink.click();
  const fromProblems = await tab
    .first()
    .waitFor({ timeout: 10000 })
    .then(
      () => true,
      () => false,
    );
  await closePreview();
  // 3. the quick fix "Show documentation for GG202"
  await page.locator('.tabs-container .tab[aria-label*="relu_bug.py"]').first().click();
  const fromQuickFix = await pickQuickFix(page, 'Show documentation for GG202')
    .then(() => tab.first().waitFor({ timeout: 10000 }))
    .then(
      () => true,
      () => false,
    );
  const dialog = await external.count();
  await closePreview();
  return {
    ok: fromHover && rendered && fromProblems && fromQuickFix && dialog === 0 && !!href && href.startsWith('command:'),
    detail: `hover link opened the GG202.md preview: ${fromHover} (rendered: ${rendered}); Problems panel code link (${href}) opened it: ${fromProblems}; "Show documentation for GG202" opened it: ${fromQuickFix}; external-site dialogs: ${dialog}`,
  };
}

/** Ctrl+. on the first squiggle of the active editor and pick the item whose text includes `title`. */
async function pickQuickFix(page, title) {
  const squiggle = page.locator(`.editor-group-container.active ${SQUIGGLE}`).first();
  const box = await squiggle.boundingBox();
  if (!box) throw new Error('no squiggle on screen');
  await page.mouse.click(box.x + Math.min(8, box.width / 2), box.y + box.height / 2);
  await page.keyboard.press('Control+.');
  const rows = page.locator('.action-widget .monaco-list-row');
  await rows.filter({ hasText: title }).first().waitFor({ state: 'visible', timeout: 10000 });
  const focused = page.locator('.action-widget .monaco-list-row.focused');
  const count = await rows.count();
  for (let i = 0; i < count && !((await focused.textContent().catch(() => '')) || '').includes(title); i++) {
    await page.keyboard.press('ArrowDown');
  }
  if (!((await focused.textContent()) || '').includes(title)) throw new Error(`could not select ${title}`);
  await page.keyboard.press('Enter');
  return rows.allTextContents();
}

/** Closes an editor tab with its close button: a focused preview (a webview) keeps Ctrl+W and F1 to itself. */
async function closeTab(page, name) {
  const tab = page.locator(`.tabs-container .tab[aria-label*="${name}"]`);
  for (let i = 0; i < 3 && (await tab.count()); i++) {
    await tab.first().hover();
    await tab
      .first()
      .locator('.tab-actions .action-label')
      .first()
      .click()
      .catch(() => undefined);
    await tab
      .first()
      .waitFor({ state: 'detached', timeout: 3000 })
      .catch(() => undefined);
  }
}

/** Whether a markdown preview (a webview: nested frames) shows `text`. */
async function previewShows(page, text, timeout = 10000) {
  return waitFor(
    async () => {
      for (const frame of page.frames()) {
        const body = await frame
          .locator('body')
          .textContent({ timeout: 500 })
          .catch(() => '');
        if (body && body.includes(text)) return true;
      }
      return false;
    },
    timeout,
    `a preview showing ${text}`,
    250,
  ).catch(() => false);
}

async function scenarioQuickFix(page, { dirs, extensionDir }) {
  const file = join(dirs.workspace, 'relu_bug.py');
  const squiggle = page.locator(`.editor-group-container.active ${SQUIGGLE}`).first();
  const box = await squiggle.boundingBox();
  if (!box) throw new Error('no squiggle on screen');
  await page.mouse.click(box.x + Math.min(8, box.width / 2), box.y + box.height / 2);
  await page.keyboard.press('Control+.');
  const item = page.locator('.action-widget .monaco-list-row').filter({ hasText: 'torch.relu' });
  await item.first().waitFor({ state: 'visible', timeout: 10000 });
  const offered = await page.locator('.action-widget .monaco-list-row').allTextContents();
  await shoot(page, '3-quickfix');
  // Pick it with the keyboard (the list's rows do not take pointer clicks reliably).
  const focused = page.locator('.action-widget .monaco-list-row.focused');
  for (
    let i = 0;
    i < offered.length && !((await focused.textContent().catch(() => '')) || '').includes('torch.relu');
    i++
  ) {
    await page.keyboard.press('ArrowDown');
  }
  if (!((await focused.textContent()) || '').includes('torch.relu'))
    throw new Error(`could not select the fix among ${JSON.stringify(offered)}`);
  await page.keyboard.press('Enter');
  await page
    .locator('.action-widget')
    .first()
    .waitFor({ state: 'hidden', timeout: 5000 })
    .catch(() => undefined);
  // The edit arrives with codeAction/resolve: save only once it is in the buffer, or the save races it.
  await page.locator('.tabs-container .tab.active.dirty').waitFor({ timeout: 10000 });
  await saveActiveEditor(page);
  const onDisk = await waitFor(
    () => {
      const text = readFileSync(file, 'utf8');
      return text !== RELU_BUG ? text : null;
    },
    10000,
    'the fixed file on disk',
  ).catch(() => readFileSync(file, 'utf8'));
  const remaining = await cliFindings(extensionDir, file);
  const matches = async () => {
    const rows = sortProblems((await problemRows(page)).map(({ code, line }) => ({ code, line })));
    return JSON.stringify(rows) === JSON.stringify(remaining) && !rows.some((r) => r.code === MUST_LIST.code);
  };
  const gone = await waitFor(matches, 10000, 'the diagnostic to disappear').catch(() => false);
  await shoot(page, '3-quickfix-applied');
  const rewritten = onDisk === RELU_FIXED;
  // as ESLint's and Ruff's: fix all and disable-for-file in the same menu
  const menu = [
    'Disable GG202 for this file',
    'gradguard: Fix All Safe Problems in This File',
    'Ignore GG202 on this line',
  ];
  const missing = menu.filter((title) => !offered.some((o) => o.includes(title)));
  return {
    ok: rewritten && gone && missing.length === 0,
    detail: `file rewritten as expected: ${rewritten}; ${MUST_LIST.code} gone from the Problems panel: ${gone} (left: ${JSON.stringify(remaining)}); menu lacks: ${JSON.stringify(missing)}`,
    offered,
    onDisk,
  };
}

async function scenarioTyping(page) {
  await openFromExplorer(page, 'typing_demo.py');
  await openProblems(page);
  await waitServerReady(page);
  await sleep(1500); // the server has checked the clean file
  // Clean before: no squiggle in this editor (other files' rows may be in the Problems panel).
  const before = (await squiggles(page)) + (await problemRows(page)).filter((r) => r.line === TYPED_AT_LINE).length;
  await page.locator('.editor-group-container.active .view-lines').click();
  await page.keyboard.press('Control+G');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible', timeout: 5000 });
  await page.keyboard.type(String(TYPED_AT_LINE - 1));
  await page.keyboard.press('Enter');
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  await page.keyboard.type(TYPED_LINE);
  const typedAt = Date.now();
  // Timed until the Problems panel lists the typed bug (not just any squiggle, e.g. a syntax error mid-typing).
  const listed = async () => (await problemRows(page)).some((x) => x.code === 'GG202' && x.line === TYPED_AT_LINE);
  const elapsed = await waitFor(listed, 2000, 'the typed bug in the Problems panel', 50).then(
    () => Date.now() - typedAt,
    () => null,
  );
  const squiggled = await page.locator(`.editor-group-container.active ${SQUIGGLE}`).count();
  await shoot(page, '4-typing');
  return {
    ok: before === 0 && elapsed !== null && squiggled > 0,
    detail: `clean before: ${before === 0}; GG202 at line ${TYPED_AT_LINE} listed ${elapsed === null ? 'not within 2000' : `after ${elapsed}`} ms; squiggles: ${squiggled}`,
    elapsedMs: elapsed,
  };
}

async function scenarioNotebook(page) {
  await openFromExplorer(page, 'notebook.ipynb');
  const notebook = page.locator('.notebookOverlay');
  await notebook.first().waitFor({ state: 'visible', timeout: 30000 });
  const cells = notebook.locator('.monaco-list-row.code-cell-row');
  await waitFor(async () => (await cells.count()) >= 2, 20000, 'the notebook cells');
  const buggy = cells.nth(1); // second code cell
  let inCell = false;
  try {
    await buggy.locator(SQUIGGLE).first().waitFor({ timeout: 30000 });
    inCell = true;
  } catch {
    inCell = false;
  }
  const otherCell = await cells.nth(0).locator(SQUIGGLE).count();
  await openProblems(page);
  const rows = await waitFor(
    async () => {
      const r = await problemRows(page);
      return r.some((x) => x.code === NOTEBOOK_BUG.code && x.line === NOTEBOOK_BUG.line) ? r : null;
    },
    10000,
    'the notebook diagnostic in the Problems panel',
  ).catch(() => []);
  await shoot(page, '5-notebook');
  const listed = rows.some((x) => x.code === NOTEBOOK_BUG.code && x.line === NOTEBOOK_BUG.line);
  return {
    ok: inCell && otherCell === 0 && listed,
    detail: `squiggle on the buggy cell: ${inCell}; none on the import cell: ${otherCell === 0}; Problems lists ${NOTEBOOK_BUG.code} at cell line ${NOTEBOOK_BUG.line}: ${listed}`,
    rows: rows.map((r) => r.text),
  };
}

async function runCommand(page, title) {
  await page.keyboard.press('F1');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type(title);
  await page.locator(`.quick-input-list .monaco-list-row[aria-label*="${title}"]`).first().waitFor();
  await page.keyboard.press('Enter');
}

/** The language server processes of this run's code-server (its own process group). */
async function serverPids(codeServerProc) {
  const { stdout } = await execFileP('ps', ['-eo', 'pid=,pgid=,args=']);
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => Number(f[1]) === codeServerProc.pid && f.slice(2).join(' ').includes('-m gradguard lsp'))
    .map((f) => Number(f[0]));
}

/** Killing the server: the client starts a new one by itself and the diagnostics come back. */
async function scenarioCrash(page, ctx) {
  await page.locator('.tabs-container .tab[aria-label*="typing_demo.py"]').first().click();
  const before = await serverPids(ctx.codeServer);
  if (before.length !== 1) throw new Error(`expected one server process, found ${JSON.stringify(before)}`);
  process.kill(before[0], 'SIGKILL');
  const restarted = await waitFor(
    async () => {
      const now = await serverPids(ctx.codeServer);
      return now.length === 1 && now[0] !== before[0] ? now : null;
    },
    20000,
    'a new server process',
  ).then(
    () => true,
    () => false,
  );
  await waitServerReady(page, 20000);
  const listed = await waitFor(
    async () => (await problemRows(page)).some((x) => x.code === 'GG202' && x.line === TYPED_AT_LINE),
    15000,
    'the diagnostics again',
  ).then(
    () => true,
    () => false,
  );
  return {
    ok: restarted && listed,
    detail: `killed server ${before[0]}; a new one started: ${restarted}; diagnostics back: ${listed}`,
  };
}

/**
 * gradguard.interpreter from User settings is the Python that runs the server (code-server's window is a
 * remote one: a machine-overridable setting was ignored there and python3 on PATH ran instead), and the
 * status item says so once ("gradguard ready: <python> (set by gradguard.interpreter; ...)").
 */
async function scenarioInterpreter(page) {
  await waitServerReady(page);
  const item = page.locator('.statusbar-item[aria-label^="gradguard ready"]').first();
  const label = (await item.getAttribute('aria-label')) || '';
  const expected = `gradguard ready: ${args.python} (set by gradguard.interpreter; Python `;
  // The settings editor's User tab of a remote window lists only settings a user may set there: a
  // machine-overridable one is missing (the empty page the issue found behind "Open Settings").
  const rows = await settingsRows(page, '@id:gradguard.interpreter');
  await shoot(page, '13-interpreter-setting');
  await page.keyboard.press('Control+W');
  return {
    ok: label.startsWith(expected) && !label.includes('ready: ready:') && rows === 1,
    detail: `status item: ${JSON.stringify(label)}; expected it to start with ${JSON.stringify(expected)}; settings editor (User tab) rows for @id:gradguard.interpreter: ${rows}`,
    label,
  };
}

/** Opens the settings editor (User tab) on a search; the number of settings it lists. */
async function settingsRows(page, query) {
  await runCommand(page, 'Preferences: Open User Settings');
  await page.locator('.settings-editor').first().waitFor({ timeout: 15000 });
  await sleep(500);
  await page.keyboard.press('Control+A'); // the search box has the focus when the editor opens
  await page.keyboard.type(query);
  await sleep(1500);
  return page.locator('.settings-editor .settings-body .setting-item-contents').count();
}

/** Lines of the active editor on screen: [{text, top}] (top in pixels, from the line's style). */
async function visibleLines(page) {
  return page.$$eval('.editor-group-container.active .view-lines .view-line', (els) =>
    els.map((e) => ({ text: (e.textContent || '').replace(/\u00a0/g, ' '), top: parseFloat(e.style.top) })),
  );
}

async function lineTop(page, startsWith) {
  const line = (await visibleLines(page)).find((l) => l.text.startsWith(startsWith));
  return line ? line.top : null;
}

async function lensTitles(page) {
  return page.$$eval('.editor-group-container.active .codelens-decoration a', (els) =>
    els.map((e) => (e.textContent || '').trim()),
  );
}

/**
 * Typing a syntax error above a class: its code lens stays and the class line does not move (before, the
 * server returned no lenses for a file that does not parse, and the code jumped by a line and back);
 * GG000 is not reported (gradguard.showSyntaxErrors is off in VS Code, where Pylance reports it).
 */
async function scenarioLensStability(page) {
  await openFromExplorer(page, 'typing_demo.py');
  await page.locator('.editor-group-container.active .codelens-decoration').first().waitFor({ timeout: 20000 });
  await sleep(500);
  const lensesBefore = await lensTitles(page);
  const topBefore = await lineTop(page, 'class Gate');
  // an unfinished call at the end of line 1: the file stops parsing, no line is added
  await page.locator('.editor-group-container.active .view-lines').click();
  await page.keyboard.press('Control+Home');
  await page.keyboard.press('End');
  await page.keyboard.type(' (');
  const tops = [];
  const started = Date.now();
  while (Date.now() - started < 2500) {
    tops.push(await lineTop(page, 'class Gate'));
    await sleep(100);
  }
  const lensesDuring = await lensTitles(page);
  const syntaxRows = (await problemRows(page)).filter((r) => r.code === 'GG000').length;
  await shoot(page, '11-lens-while-typing');
  // back to the parsing text
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Backspace');
  await sleep(800);
  const moved = tops.filter((t) => t !== topBefore).length;
  return {
    ok:
      topBefore !== null &&
      moved === 0 &&
      JSON.stringify(lensesDuring) === JSON.stringify(lensesBefore) &&
      syntaxRows === 0,
    detail: `class line at ${topBefore}px, moved in ${moved} of ${tops.length} samples over 2.5 s of a syntax error; lenses before ${JSON.stringify(lensesBefore)}, during ${JSON.stringify(lensesDuring)}; GG000 rows: ${syntaxRows}`,
  };
}

/**
 * The probe from its lenses: "Check gradient flow of all modules in this file" runs both modules, and each
 * lens then shows its last result; an edit elsewhere in the file keeps the results.
 */
async function scenarioProbeLens(page) {
  await openFromExplorer(page, 'probe_demo.py');
  const allModules = page
    .locator('.editor-group-container.active .codelens-decoration a')
    .filter({ hasText: 'Check gradient flow of all modules in this file' });
  await allModules.first().waitFor({ timeout: 30000 });
  const before = await lensTitles(page);
  const clicked = Date.now();
  await allModules.first().click();
  const results = await waitFor(
    async () => {
      const titles = await lensTitles(page);
      return titles.some((t) => t.startsWith('✗')) && titles.some((t) => t.startsWith('✓')) ? titles : null;
    },
    90000,
    'the probe results on the lenses',
    200,
  ).catch(() => null);
  const probeMs = Date.now() - clicked;
  await openProblems(page);
  const gg901 = await waitFor(
    async () => (await problemRows(page)).some((r) => r.code === 'GG901' && r.line === 9),
    10000,
    'GG901',
  ).then(
    () => true,
    () => false,
  );
  await shoot(page, '9-probe-lens');
  // an edit outside both modules: a comment at the end of the file
  await page.locator('.editor-group-container.active .view-lines').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('# tried with the probe');
  await sleep(1500);
  const afterEdit = await lensTitles(page);
  const stillListed = (await problemRows(page)).some((r) => r.code === 'GG901' && r.line === 9);
  await page.keyboard.press('Control+Z');
  const expectedFail = /^✗ 2 parameters without gradient · \d+(\.\d)? m?s$/;
  const expectedPass = /^✓ all 4 parameters get gradients · \d+(\.\d)? m?s$/;
  const shown = (titles) =>
    !!titles && titles.some((t) => expectedFail.test(t)) && titles.some((t) => expectedPass.test(t));
  return {
    ok: shown(results) && gg901 && shown(afterEdit) && stillListed,
    detail: `lenses before ${JSON.stringify(before)}, after the run (${probeMs} ms) ${JSON.stringify(results)}; GG901 listed: ${gg901}; after an edit elsewhere ${JSON.stringify(afterEdit)}, GG901 still listed: ${stillListed}`,
    probeMs,
    lenses: results,
  };
}

/**
 * Saving a pyproject.toml with [tool.gradguard] ignore = ["GG402"] re-checks the open file at once, and
 * deleting it brings GG402 back (the server registers a watcher for every pyproject.toml).
 */
async function scenarioWatcher(page, { dirs }) {
  await openFromExplorer(page, 'train_loop.py');
  await openProblems(page);
  const listed = async () => (await problemRows(page)).some((r) => r.code === TRAIN_LOOP_CODE);
  await waitFor(listed, 20000, `${TRAIN_LOOP_CODE} in the Problems panel`);
  const pyproject = join(dirs.workspace, 'pyproject.toml');
  writeFileSync(pyproject, `[tool.gradguard]\nignore = ["${TRAIN_LOOP_CODE}"]\n`);
  const written = Date.now();
  const gone = await waitFor(async () => !(await listed()), 10000, `${TRAIN_LOOP_CODE} to go`, 50).then(
    () => Date.now() - written,
    () => null,
  );
  await shoot(page, '12-watcher-ignored');
  rmSync(pyproject);
  const deleted = Date.now();
  const back = await waitFor(listed, 10000, `${TRAIN_LOOP_CODE} to come back`, 50).then(
    () => Date.now() - deleted,
    () => null,
  );
  return {
    ok: gone !== null && back !== null,
    detail: `pyproject.toml ignoring ${TRAIN_LOOP_CODE}: gone from the Problems panel after ${gone} ms; file deleted: back after ${back} ms`,
    ignoredMs: gone,
    restoredMs: back,
  };
}

/** Type into the Problems panel's filter box ('' clears it). */
async function filterProblems(page, text) {
  const input = page.locator('.markers-panel-container .viewpane-filter input, .panel .viewpane-filter input').first();
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill(text);
  await sleep(400);
}

/**
 * gradguard.diagnosticMode "workspace" (a workspace setting, which VS Code watches): every file of the
 * workspace is checked in the background, and the Problems panel lists the GG101 of project/model.py, a
 * file that was never opened and whose finding rests on project/base.py; back to "openFilesOnly", it goes.
 */
async function scenarioWorkspaceMode(page, { dirs }) {
  // written now and removed afterwards, so that the other scenarios' screenshots do not show them
  const project = join(dirs.workspace, 'project');
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'base.py'), PROJECT_BASE);
  writeFileSync(join(project, 'model.py'), PROJECT_MODEL);
  await openProblems(page);
  await filterProblems(page, PROJECT_BUG.code);
  const listed = async () =>
    (await problemRows(page)).some((r) => r.code === PROJECT_BUG.code && r.line === PROJECT_BUG.line);
  const before = await listed();
  const settings = join(dirs.workspace, '.vscode', 'settings.json');
  const vscodeDir = !existsSync(dirname(settings));
  mkdirSync(dirname(settings), { recursive: true });
  writeFileSync(settings, JSON.stringify({ 'gradguard.diagnosticMode': 'workspace' }));
  const written = Date.now();
  const shown = await waitFor(listed, 60000, `${PROJECT_BUG.code} of project/model.py in the Problems panel`, 100).then(
    () => Date.now() - written,
    () => null,
  );
  const texts = await page.$$eval('.markers-panel .monaco-list-row', (els) => els.map((e) => e.textContent || ''));
  const fileRow = texts.some((t) => t.includes('model.py') && !/\[Ln \d+/.test(t));
  const neverOpened = (await page.locator('.tabs-container .tab[aria-label*="model.py"]').count()) === 0;
  await shoot(page, '14-workspace-mode');
  rmSync(vscodeDir ? dirname(settings) : settings, { recursive: true });
  const removed = Date.now();
  const gone = await waitFor(async () => !(await listed()), 30000, `${PROJECT_BUG.code} to go`, 100).then(
    () => Date.now() - removed,
    () => null,
  );
  await filterProblems(page, '');
  rmSync(project, { recursive: true });
  return {
    ok: !before && shown !== null && fileRow && neverOpened && gone !== null,
    detail: `openFilesOnly: ${PROJECT_BUG.code} of the unopened project/model.py listed: ${before}; workspace mode: listed after ${shown} ms under a model.py file row: ${fileRow}, never opened: ${neverOpened}; openFilesOnly again: gone after ${gone} ms`,
    shownMs: shown,
    goneMs: gone,
    rows: texts,
  };
}

/** The "gradguard" output channel as written to disk so far. */
function outputLog(dirs) {
  const found = [];
  const walk = (d) => {
    for (const entry of readdirSync(d)) {
      const p = join(d, entry);
      if (statSync(p).isDirectory()) walk(p);
      else if (/gradguard\.log$/.test(entry)) found.push(p);
    }
  };
  const logs = join(dirs.userData, 'logs');
  if (existsSync(logs)) walk(logs);
  return found.map((p) => readFileSync(p, 'utf8')).join('\n');
}

/**
 * "gradguard: Restart Server" while the client is restarting a crashed server by itself: one new server
 * comes up and works (before, the old client went on registering its commands next to the new one's,
 * "command 'gradguard.explainRule' already exists", and the server did not start), and the old server's
 * normal exit is not logged as an error.
 */
/**
 * Shapes: the inlay hints after the assignments of `forward` (the shapes the script's call gives), and the
 * hover over a tensor variable: shape, dtype and gradient status in one line.
 */
async function scenarioShapes(page) {
  await openFromExplorer(page, 'shapes_demo.py');
  const lines = page.locator('.editor-group-container.active .view-lines');
  const text = async () => ((await lines.textContent().catch(() => '')) || '').replace(/\u00a0/g, ' ');
  let shown = [];
  await waitFor(
    async () => {
      const now = await text();
      shown = SHAPE_HINTS.filter((hint) => now.includes(hint));
      return shown.length === SHAPE_HINTS.length;
    },
    30000,
    'the shape inlay hints',
  ).catch(() => undefined);
  const underlined = await squiggles(page);
  await shoot(page, '13-inlay-hints');
  // the cursor on `h` of line 16, then "Show or Focus Hover"
  await page.keyboard.press('Control+G');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type('16:9');
  await page.keyboard.press('Enter');
  await sleep(300);
  let hoverText = '';
  for (let attempt = 0; attempt < 3 && !hoverText.includes('Tensor['); attempt++) {
    await page.keyboard.press('Control+K');
    await page.keyboard.press('Control+I');
    await page
      .locator('.monaco-hover:not(.hidden)')
      .filter({ hasText: 'Tensor[' })
      .first()
      .waitFor({ state: 'visible', timeout: 8000 })
      .catch(() => undefined);
    hoverText = (await page.locator('.monaco-hover:not(.hidden)').allTextContents()).join('\n');
  }
  await sleep(300);
  await shoot(page, '12-shape-hover');
  await page.keyboard.press('Escape');
  const checks = {
    hints: shown.length === SHAPE_HINTS.length,
    hover: hoverText.includes(SHAPE_HOVER),
    gg501Underlined: underlined >= 1,
  };
  return {
    ok: Object.values(checks).every(Boolean),
    detail: `inlay hints ${shown.length}/${SHAPE_HINTS.length}; hover ${JSON.stringify(hoverText.slice(0, 160))}; ${JSON.stringify(checks)}`,
    hints: shown,
  };
}

async function scenarioRestart(page, { dirs, codeServer: proc }) {
  const before = await serverPids(proc);
  if (before.length !== 1) throw new Error(`expected one server process, found ${JSON.stringify(before)}`);
  process.kill(before[0], 'SIGKILL');
  await runCommand(page, 'gradguard: Restart Server'); // while the client restarts the killed server
  await sleep(1500);
  await waitServerReady(page, 30000);
  const one = await waitFor(
    async () => {
      const now = await serverPids(proc);
      return now.length === 1 && now[0] !== before[0] ? now : null;
    },
    20000,
    'one new server process',
  ).then(
    () => true,
    () => false,
  );
  // the new server answers: Explain Rule goes through it
  await runCommand(page, 'gradguard: Explain Rule');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type('GG203');
  await page.keyboard.press('Enter');
  const answers = await page
    .locator('.tabs-container .tab[aria-label*="GG203.md"]')
    .first()
    .waitFor({ timeout: 15000 })
    .then(
      () => true,
      () => false,
    );
  const text = await waitFor(
    () => {
      const t = outputLog(dirs);
      return /exited with code 0/.test(t) ? t : null;
    },
    15000,
    'the restart in the output log',
    250,
  ).catch(() => outputLog(dirs));
  const lines = text.split('\n').filter((l) => /exited with code 0/.test(l));
  const asError = lines.filter((l) => /\[Error/.test(l));
  const clash = /already exists/.test(text);
  await closeTab(page, 'GG203.md');
  return {
    ok: one && answers && !clash && lines.length > 0 && asError.length === 0,
    detail: `one new server: ${one}; it answers (Explain Rule GG203): ${answers}; "already exists" in the log: ${clash}; old server's exit logged ${JSON.stringify(lines.slice(0, 2))}, as errors: ${asError.length}`,
  };
}

async function scenarioExplain(page) {
  await runCommand(page, 'gradguard: Explain Rule');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type('gg202');
  await page.keyboard.press('Enter');
  const tab = page.locator('.tabs-container .tab[aria-label*="GG202.md"]');
  const shown = await tab
    .first()
    .waitFor({ timeout: 10000 })
    .then(
      () => true,
      () => false,
    );
  await sleep(800);
  await shoot(page, '6-explain');
  return { ok: shown, detail: `"gradguard: Explain Rule" GG202 opened a GG202.md preview: ${shown}` };
}

async function scenarioBadInterpreter(page, { dirs }) {
  // A workspace setting (.vscode/settings.json, which VS Code watches) overrides the user's interpreter.
  const missing = join(dirs.run, 'no-such-python');
  mkdirSync(join(dirs.workspace, '.vscode'), { recursive: true });
  writeFileSync(join(dirs.workspace, '.vscode', 'settings.json'), JSON.stringify({ 'gradguard.interpreter': missing }));
  const toasts = page
    .locator('.notifications-toasts .notification-toast')
    .filter({ hasText: 'could not start the interpreter' });
  const shown = await toasts
    .first()
    .waitFor({ timeout: 20000 })
    .then(
      () => true,
      () => false,
    );
  const text = shown ? (await toasts.first().textContent()) || '' : '';
  const status = page.locator('.statusbar-item[aria-label^="gradguard error"]');
  const statusError = await status
    .first()
    .waitFor({ state: 'attached', timeout: 5000 })
    .then(
      () => true,
      () => false,
    );
  await shoot(page, '7-bad-interpreter');
  // the cause first (not "needs Python 3.10", which a missing file says nothing about)
  const named = text.includes(missing) && text.includes('ENOENT') && !text.includes('needs Python');
  const buttons = shown ? await toasts.first().locator('.monaco-button').allTextContents() : [];
  // "Select Interpreter": the Python extension's picker (here its stand-in)
  let picker = false;
  if (buttons.includes('Select Interpreter')) {
    await toasts.first().locator('.monaco-button').filter({ hasText: 'Select Interpreter' }).click();
    picker = await page
      .locator('.notifications-toasts .notification-toast')
      .filter({ hasText: 'Python stand-in: Select Interpreter was run' })
      .first()
      .waitFor({ timeout: 10000 })
      .then(
        () => true,
        () => false,
      );
  }
  // "Open Settings" lands on the setting: restart to get the message again
  await runCommand(page, 'gradguard: Restart Server');
  const again = toasts.first();
  let settingShown = false;
  if (
    await again.waitFor({ timeout: 20000 }).then(
      () => true,
      () => false,
    )
  ) {
    await again.locator('.monaco-button').filter({ hasText: 'Open Settings' }).click();
    const row = page
      .locator('.settings-editor .setting-item-contents')
      .filter({ hasText: 'Python (3.10 or newer) that runs the gradguard server' });
    settingShown = await row
      .first()
      .waitFor({ timeout: 10000 })
      .then(
        () => true,
        () => false,
      );
    const rows = await page.locator('.settings-editor .setting-item-contents').count();
    settingShown = settingShown && rows === 1;
    await shoot(page, '7-open-settings');
    await page.keyboard.press('Control+W');
  }
  return {
    ok: shown && named && statusError && picker && settingShown,
    detail: `error names the interpreter and ENOENT, not a version: ${shown && named}; status bar shows the error: ${statusError}; buttons ${JSON.stringify(buttons)}; Select Interpreter ran the Python extension's picker: ${picker}; Open Settings showed gradguard.interpreter alone: ${settingShown}`,
    text,
  };
}

/**
 * Workspace trust, in a second code-server with trust enabled: in restricted mode the static analysis
 * runs but the probe's code lenses are absent; granting trust restarts the server and they appear.
 */
async function scenarioTrust(browser, ctx) {
  const { dirs } = ctx;
  const port = await freePort();
  const server = await startCodeServer(dirs, port, {
    userData: dirs.trustUserData,
    workspace: dirs.trustWorkspace,
    trust: true,
  });
  ctx.servers.push(server);
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  page.setDefaultTimeout(15000);
  try {
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.trustWorkspace)}`);
    const no = page.locator('.monaco-dialog-box .monaco-button').filter({ hasText: "No, I don't trust the authors" });
    await no.first().waitFor({ timeout: 60000 });
    await no.first().click();
    await openFromExplorer(page, 'relu_bug.py');
    await waitServerReady(page);
    await page.locator(`.editor-group-container.active ${SQUIGGLE}`).first().waitFor({ timeout: 30000 });
    await sleep(1500); // code lenses come a moment after the diagnostics
    const lens = page
      .locator('.editor-group-container.active .codelens-decoration')
      .filter({ hasText: 'Check gradient flow' });
    const lensesUntrusted = await lens.count();
    await shoot(page, '8-untrusted');
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    const trustButton = page.locator('.workspace-trust-editor .monaco-button').filter({ hasText: /^Trust$/ });
    await trustButton.first().click();
    await page.locator('.tabs-container .tab[aria-label*="relu_bug.py"]').first().click();
    const lensAfter = await lens
      .first()
      .waitFor({ timeout: 30000 })
      .then(
        () => true,
        () => false,
      );
    await shoot(page, '8-trusted');
    return {
      ok: lensesUntrusted === 0 && lensAfter,
      detail: `restricted mode: diagnostics shown, probe code lenses: ${lensesUntrusted}; after granting trust the lens appears: ${lensAfter}`,
    };
  } finally {
    await page.close().catch(() => undefined);
  }
}

// -- main --------------------------------------------------------------------------------------
async function main() {
  mkdirSync(artifacts, { recursive: true });
  const results = { scenarios: {}, startedAt: new Date().toISOString() };
  const save = () => writeFileSync(join(artifacts, 'results.json'), JSON.stringify(results, null, 2));
  const require = createRequire(join(deps, 'node_modules', 'noop.js'));
  let playwright;
  try {
    playwright = require('playwright-core');
  } catch (err) {
    results.setupError = `playwright-core not found under ${deps}: run scripts/install-editor-deps.sh (${err.message})`;
    save();
    return 2;
  }
  const dirs = runDirs();
  writeWorkspace(dirs);
  let server;
  let browser;
  const extraServers = [];
  try {
    const t0 = Date.now();
    const extensionDir = await installVsix(dirs);
    results.extensionDir = extensionDir;
    const port = await freePort();
    server = await startCodeServer(dirs, port);
    log(`code-server up on ${port} in ${Date.now() - t0} ms`);
    browser = await playwright.chromium.launch({
      executablePath: args.chromium,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    const consoleErrors = [];
    page.on('pageerror', (err) => consoleErrors.push(String(err)));
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.workspace)}`);
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 60000 });
    log('workbench ready');
    const ctx = { openedAt: Date.now(), dirs, extensionDir, servers: extraServers, codeServer: server };
    const scenarios = [
      ['problems', () => scenarioProblems(page, ctx)],
      ['interpreter', () => scenarioInterpreter(page)],
      ['hover', () => scenarioHover(page, ctx)],
      ['docsLink', () => scenarioDocsLink(page)],
      ['quickfix', () => scenarioQuickFix(page, ctx)],
      ['typing', () => scenarioTyping(page)],
      ['lensStability', () => scenarioLensStability(page)],
      ['notebook', () => scenarioNotebook(page)],
      ['probeLens', () => scenarioProbeLens(page)],
      ['watcher', () => scenarioWatcher(page, ctx)],
      ['workspaceMode', () => scenarioWorkspaceMode(page, ctx)],
      ['shapes', () => scenarioShapes(page)],
      ['crash', () => scenarioCrash(page, ctx)],
      ['restart', () => scenarioRestart(page, ctx)],
      ['explain', () => scenarioExplain(page)],
      ['badInterpreter', () => scenarioBadInterpreter(page, ctx)],
      ['trust', () => scenarioTrust(browser, ctx)],
    ].filter(([name]) => !args.only || args.only.split(',').includes(name));
    page.setDefaultTimeout(15000);
    for (const [name, run] of scenarios) {
      const started = Date.now();
      await page.keyboard.press('Escape'); // close whatever a failed scenario left open
      await page.keyboard.press('Escape');
      try {
        results.scenarios[name] = await run();
      } catch (err) {
        results.scenarios[name] = { ok: false, detail: `error: ${err.message.split('\n')[0]}` };
        await shoot(page, `failed-${name}`).catch(() => undefined);
        pendingShots.clear();
      }
      results.scenarios[name].durationMs = Date.now() - started;
      publishShots(results.scenarios[name].ok);
      log(`${name}: ${results.scenarios[name].ok ? 'ok' : 'FAILED'} - ${results.scenarios[name].detail}`);
      save();
    }
    results.firstDiagnosticMs = ctx.firstDiagnosticMs;
    results.pageErrors = consoleErrors.slice(0, 20);
    results.totalMs = Date.now() - t0;
  } catch (err) {
    results.setupError = String(err.stack || err);
    log('setup failed:', err.message);
  } finally {
    if (browser) await browser.close().catch(() => undefined);
    stopCodeServer(server);
    for (const extra of extraServers) stopCodeServer(extra);
    await sleep(500);
    if (server) results.codeServerLog = server.logLines.join('').slice(-4000);
    try {
      collectLogs(dirs);
    } catch (err) {
      log('could not collect logs:', err.message);
    }
    if (!args.keep) rmSync(join(dirs.run, 'xdg'), { recursive: true, force: true });
    save();
  }
  if (results.setupError) return 2;
  return Object.values(results.scenarios).every((s) => s.ok) ? 0 : 1;
}

process.exitCode = await main();

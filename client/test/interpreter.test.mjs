import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const require = createRequire(import.meta.url);
const interp = require('../../out/lib/interpreter.js');

const base = { home: '/home/u', env: { VENV: '/opt/venv' }, platform: 'linux', trusted: true, workspaceFolder: '/ws' };

test('the gradguard.interpreter setting wins', () => {
  const r = interp.resolveInterpreter({ ...base, setting: '/usr/bin/python3.12', pythonExtension: ['/x/python'] });
  assert.deepEqual(r, { command: '/usr/bin/python3.12', args: [], source: 'setting' });
});

test('variables and ~ in the setting are expanded; relative paths are relative to the workspace', () => {
  assert.equal(
    interp.resolveInterpreter({ ...base, setting: '${workspaceFolder}/.venv/bin/python' }).command,
    '/ws/.venv/bin/python',
  );
  assert.equal(interp.resolveInterpreter({ ...base, setting: '~/py/bin/python' }).command, '/home/u/py/bin/python');
  assert.equal(
    interp.resolveInterpreter({ ...base, setting: '${env:VENV}/bin/python' }).command,
    '/opt/venv/bin/python',
  );
  assert.equal(interp.resolveInterpreter({ ...base, setting: '${userHome}/p' }).command, '/home/u/p');
  assert.equal(interp.resolveInterpreter({ ...base, setting: '.venv/bin/python' }).command, '/ws/.venv/bin/python');
  assert.equal(interp.resolveInterpreter({ ...base, setting: 'python3.11' }).command, 'python3.11');
});

test('a list setting gives a command with arguments', () => {
  const r = interp.resolveInterpreter({ ...base, setting: ['py', '-3.12'] });
  assert.deepEqual(r, { command: 'py', args: ['-3.12'], source: 'setting' });
  assert.deepEqual(interp.serverArgs(r), ['-3.12', '-m', 'gradguard', 'lsp']);
});

test('blank setting: the Python extension environment, in trusted workspaces only', () => {
  const r = interp.resolveInterpreter({ ...base, setting: '  ', pythonExtension: ['/ws/.venv/bin/python'] });
  assert.deepEqual(r, { command: '/ws/.venv/bin/python', args: [], source: 'pythonExtension' });
  const untrusted = interp.resolveInterpreter({
    ...base,
    trusted: false,
    setting: '',
    pythonExtension: ['/ws/.venv/bin/python'],
  });
  assert.deepEqual(untrusted, { command: 'python3', args: [], source: 'path' });
});

test('nothing configured: python3 on PATH (python on Windows)', () => {
  assert.deepEqual(interp.resolveInterpreter({ ...base, setting: undefined }), {
    command: 'python3',
    args: [],
    source: 'path',
  });
  assert.equal(interp.resolveInterpreter({ ...base, setting: '', platform: 'win32' }).command, 'python');
});

test('check output parsing', () => {
  assert.deepEqual(interp.parseCheckOutput('(3, 11)\nTrue\n'), { version: [3, 11], hasGradguard: true });
  assert.deepEqual(interp.parseCheckOutput('(3, 9)\r\nFalse\r\n'), { version: [3, 9], hasGradguard: false });
  assert.deepEqual(interp.parseCheckOutput('(2, 7)\n'), { version: [2, 7] });
  assert.deepEqual(interp.parseCheckOutput('garbage'), {});
  assert.equal(interp.versionAtLeast([3, 10]), true);
  assert.equal(interp.versionAtLeast([3, 9]), false);
  assert.equal(interp.versionAtLeast([4, 0]), true);
  assert.equal(interp.versionAtLeast([2, 7]), false);
});

const fakeExec = (outcome) => async () => outcome;
const py = { command: 'python3', args: [], source: 'path' };

test('check: missing interpreter gives a clear message', async () => {
  const r = await interp.checkInterpreter(
    py,
    {},
    'useBundled',
    fakeExec({ stdout: '', stderr: '', error: { code: 'ENOENT', message: 'spawn python3 ENOENT' } }),
  );
  assert.equal(r.ok, false);
  assert.equal(r.reason, 'missing');
  // the cause first, not a version requirement the interpreter may well meet
  assert.match(
    r.message,
    /^gradguard could not start the interpreter "python3" \(found on PATH\): no such file or command \(ENOENT\)\./,
  );
  assert.doesNotMatch(r.message, /needs Python/);
  assert.match(r.message, /gradguard\.interpreter/);
  const denied = await interp.checkInterpreter(
    py,
    {},
    'useBundled',
    fakeExec({ stdout: '', stderr: '', error: { code: 'EACCES', message: 'spawn python3 EACCES' } }),
  );
  assert.match(denied.message, /: permission denied \(EACCES\)\./);
});

test('the running interpreter is described once, with where it came from', () => {
  const described = interp.describeRunning(
    { command: '/usr/bin/python3.12', args: [], source: 'setting' },
    [3, 12],
    'useBundled',
  );
  assert.equal(described, '/usr/bin/python3.12 (set by gradguard.interpreter; Python 3.12, useBundled)');
});

test('check: too old, missing gradguard, fine', async () => {
  const old = await interp.checkInterpreter(py, {}, 'useBundled', fakeExec({ stdout: '(3, 8)\nTrue\n', stderr: '' }));
  assert.equal(old.reason, 'tooOld');
  assert.match(old.message, /is Python 3\.8/);
  const noPkg = await interp.checkInterpreter(
    py,
    {},
    'fromEnvironment',
    fakeExec({ stdout: '(3, 12)\nFalse\n', stderr: '' }),
  );
  assert.equal(noPkg.reason, 'noGradguard');
  assert.match(noPkg.message, /pip install gradguard/);
  const noBundle = await interp.checkInterpreter(
    py,
    {},
    'useBundled',
    fakeExec({ stdout: '(3, 12)\nFalse\n', stderr: '' }),
  );
  assert.match(noBundle.message, /bundled/);
  const ok = await interp.checkInterpreter(py, {}, 'useBundled', fakeExec({ stdout: '(3, 12)\nTrue\n', stderr: '' }));
  assert.deepEqual(ok, { ok: true, version: [3, 12] });
});

test('check: a program that is not Python', async () => {
  const r = await interp.checkInterpreter(
    py,
    {},
    'useBundled',
    fakeExec({ stdout: '', stderr: 'bad option -c\n', error: { code: 1, message: 'exit 1' } }),
  );
  assert.equal(r.reason, 'failed');
  assert.match(r.message, /bad option -c/);
});

test(
  'check runs a real process (fake interpreters as shell scripts)',
  { skip: process.platform === 'win32' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-interp-'));
    const script = (name, body) => {
      const p = join(dir, name);
      writeFileSync(p, `#!/bin/sh\n${body}\n`);
      chmodSync(p, 0o755);
      return p;
    };
    const old = script('py38', 'echo "(3, 8)"; echo True');
    const good = script('py312', 'echo "(3, 12)"; echo "$PYTHONPATH" >&2; echo True');
    assert.equal(
      (await interp.checkInterpreter({ command: old, args: [], source: 'setting' }, process.env, 'useBundled')).reason,
      'tooOld',
    );
    const r = await interp.checkInterpreter({ command: good, args: [], source: 'setting' }, process.env, 'useBundled');
    assert.deepEqual(r, { ok: true, version: [3, 12] });
    const missing = await interp.checkInterpreter(
      { command: join(dir, 'nope'), args: [], source: 'setting' },
      process.env,
      'useBundled',
    );
    assert.equal(missing.reason, 'missing');
  },
);

test('useBundled puts bundled/libs first on PYTHONPATH; fromEnvironment leaves it alone', () => {
  const env = interp.serverEnvironment('useBundled', '/ext', { PYTHONPATH: '/mine', PATH: '/bin' }, 'linux');
  assert.equal(env.PYTHONPATH, join('/ext', 'bundled', 'libs') + ':/mine');
  assert.equal(env.PATH, '/bin');
  assert.equal(interp.serverEnvironment('useBundled', '/ext', {}, 'linux').PYTHONPATH, join('/ext', 'bundled', 'libs'));
  assert.equal(
    interp.serverEnvironment('fromEnvironment', '/ext', { PYTHONPATH: '/mine' }, 'linux').PYTHONPATH,
    '/mine',
  );
  assert.equal(interp.serverEnvironment('fromEnvironment', '/ext', {}, 'linux').PYTHONPATH, undefined);
});

test('hasInterpreterSetting: blank strings and empty lists mean "not set"', () => {
  assert.equal(interp.hasInterpreterSetting(''), false);
  assert.equal(interp.hasInterpreterSetting('   '), false);
  assert.equal(interp.hasInterpreterSetting([]), false);
  assert.equal(interp.hasInterpreterSetting(undefined), false);
  assert.equal(interp.hasInterpreterSetting('/usr/bin/python3'), true);
  assert.equal(interp.hasInterpreterSetting(['py', '-3.12']), true);
});

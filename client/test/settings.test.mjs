import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';

const require = createRequire(import.meta.url);
const settings = require('../../out/lib/settings.js');
const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
const properties = manifest.contributes.configuration.properties;

const reader = (values) => (key) => values[key];

test('defaults when nothing is set', () => {
  assert.deepEqual(settings.toServerSettings(reader({}), true), {
    enable: true,
    select: [],
    ignore: [],
    severity: {},
    lintOnChange: true,
    debounceMs: 150,
    probe: { enable: true, timeout: 20 },
    showSyntaxErrors: false,
    diagnosticMode: 'openFilesOnly',
    inlayHints: { shapes: 'forward' },
    exclude: [],
  });
});

test('package.json defaults are the ones the client falls back to', () => {
  const fromManifest = (key) => properties[`gradguard.${key}`].default;
  assert.deepEqual(settings.toServerSettings(fromManifest, true), settings.toServerSettings(reader({}), true));
});

test('every server setting and client setting is declared with a description and a default', () => {
  const keys = [
    'enable',
    'select',
    'ignore',
    'severity',
    'lintOnChange',
    'debounceMs',
    'probe.enable',
    'probe.timeout',
    'showSyntaxErrors',
    'diagnosticMode',
    'inlayHints.shapes',
    'exclude',
    'interpreter',
    'importStrategy',
    'trace.server',
  ];
  for (const key of keys) {
    const prop = properties[`gradguard.${key}`];
    assert.ok(prop, `gradguard.${key} missing from package.json`);
    assert.ok(prop.description || prop.markdownDescription, `gradguard.${key} has no description`);
    assert.ok('default' in prop, `gradguard.${key} has no default`);
  }
  assert.deepEqual(Object.keys(properties).sort(), keys.map((k) => `gradguard.${k}`).sort());
});

test('user values are mapped and normalised', () => {
  const problems = [];
  const out = settings.toServerSettings(
    reader({
      enable: false,
      select: [' gg2', 'GG401', 'GG2'],
      ignore: 'GG203, gg9',
      severity: { gg202: 'Error', GG3: 'info', GG401: 'warn' },
      lintOnChange: false,
      debounceMs: 120.6,
      'probe.enable': true,
      'probe.timeout': 5,
      showSyntaxErrors: true,
      diagnosticMode: 'workspace',
      'inlayHints.shapes': 'all',
      exclude: [' build ', 'legacy/**', 'build', ''],
    }),
    true,
    problems,
  );
  assert.deepEqual(out, {
    enable: false,
    select: ['GG2', 'GG401'],
    ignore: ['GG203', 'GG9'],
    severity: { GG202: 'error', GG3: 'information', GG401: 'warning' },
    lintOnChange: false,
    debounceMs: 121,
    probe: { enable: true, timeout: 5 },
    showSyntaxErrors: true,
    diagnosticMode: 'workspace',
    inlayHints: { shapes: 'all' },
    exclude: ['build', 'legacy/**'],
  });
  assert.deepEqual(problems, []);
});

test('bad values are dropped and reported, never sent', () => {
  const problems = [];
  const out = settings.toServerSettings(
    reader({
      enable: 'yes',
      select: ['GG202', 'E501', 7],
      ignore: 42,
      severity: { GG202: 'fatal', F401: 'error', GG203: 'hint', GG: 'error' },
      debounceMs: -5,
      'probe.timeout': Number.NaN,
      diagnosticMode: 'everything',
      'inlayHints.shapes': 'everywhere',
      exclude: ['build', 3],
    }),
    true,
    problems,
  );
  assert.equal(out.enable, true);
  assert.deepEqual(out.select, ['GG202']);
  assert.deepEqual(out.ignore, []);
  assert.deepEqual(out.severity, { GG203: 'hint' });
  assert.equal(out.debounceMs, 0);
  assert.equal(out.probe.timeout, 20);
  assert.equal(out.diagnosticMode, 'openFilesOnly');
  assert.deepEqual(out.inlayHints, { shapes: 'forward' });
  assert.deepEqual(out.exclude, ['build']);
  assert.deepEqual(
    problems.map((p) => p.key),
    [
      'select',
      'select',
      'ignore',
      'severity',
      'severity',
      'severity',
      'diagnosticMode',
      'inlayHints.shapes',
      'exclude',
    ],
  );
  assert.match(problems[0].message, /E501/);
});

test('debounce and probe timeout are clamped to the declared range', () => {
  const out = settings.toServerSettings(reader({ debounceMs: 10 ** 9, 'probe.timeout': 10 ** 9 }), true);
  assert.equal(out.debounceMs, properties['gradguard.debounceMs'].maximum);
  assert.equal(out.probe.timeout, properties['gradguard.probe.timeout'].maximum);
});

test('the probe is off in an untrusted workspace whatever the setting says', () => {
  assert.equal(settings.toServerSettings(reader({ 'probe.enable': true }), false).probe.enable, false);
  assert.equal(settings.toServerSettings(reader({ 'probe.enable': false }), true).probe.enable, false);
  assert.equal(settings.toServerSettings(reader({}), true).probe.enable, true);
});

test('initializationOptions carry the settings and the trust state', () => {
  const s = settings.toServerSettings(reader({}), false);
  // commandLinks: the server links rules to command:gradguard.showDocumentation (the local explanation)
  assert.deepEqual(settings.initializationOptions(s, false), {
    settings: s,
    workspaceTrusted: false,
    commandLinks: true,
  });
  // the interpreter the server asks for its sys.path (installed packages are read from there)
  assert.deepEqual(settings.initializationOptions(s, true, ['/usr/bin/python3', '-X', 'utf8']), {
    settings: s,
    workspaceTrusted: true,
    commandLinks: true,
    interpreter: ['/usr/bin/python3', '-X', 'utf8'],
  });
});

test('diagnosticMode: the values the server knows, per folder', () => {
  assert.deepEqual(properties['gradguard.diagnosticMode'].enum, [...settings.DIAGNOSTIC_MODES]);
  assert.equal(properties['gradguard.diagnosticMode'].scope, 'resource');
});

test('interpreter settings apply in remote windows (code-server, SSH, WSL, containers)', () => {
  // machine-overridable settings are read from Remote settings only in a remote window, so a path in
  // User settings was ignored; resource scope (as Ruff's and the Python tools template's) is read
  // from User, Remote, Workspace and Folder settings.
  assert.equal(properties['gradguard.interpreter'].scope, 'resource');
  assert.ok(!['machine', 'machine-overridable'].includes(properties['gradguard.importStrategy'].scope));
});

test('import strategy defaults to the bundled server', () => {
  assert.equal(settings.importStrategy(undefined), 'useBundled');
  assert.equal(settings.importStrategy('bogus'), 'useBundled');
  assert.equal(settings.importStrategy('fromEnvironment'), 'fromEnvironment');
  assert.deepEqual(properties['gradguard.importStrategy'].enum, ['useBundled', 'fromEnvironment']);
});

test('manifest: limited support in untrusted workspaces, engine no newer than 1.100', () => {
  assert.equal(manifest.capabilities.untrustedWorkspaces.supported, 'limited');
  assert.ok(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations.includes('gradguard.interpreter'));
  const m = /^\^(\d+)\.(\d+)\.\d+$/.exec(manifest.engines.vscode);
  assert.ok(m && (Number(m[1]) < 1 || (Number(m[1]) === 1 && Number(m[2]) <= 100)), manifest.engines.vscode);
  for (const id of [
    'gradguard.restart',
    'gradguard.showLog',
    'gradguard.fixAll',
    'gradguard.explainRule',
    'gradguard.runProbe',
  ]) {
    assert.ok(
      manifest.contributes.commands.some((c) => c.command === id),
      id,
    );
  }
});

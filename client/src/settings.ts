// Maps the `gradguard.*` VS Code settings to the settings object the server reads (initializationOptions
// and workspace/configuration for section "gradguard"). No `vscode` import: unit-tested with node:test.

export type Severity = 'error' | 'warning' | 'information' | 'hint';

/** `openFilesOnly`: diagnostics for open files; `workspace`: every Python file and notebook of the workspace. */
export type DiagnosticMode = 'openFilesOnly' | 'workspace';
export const DIAGNOSTIC_MODES: readonly DiagnosticMode[] = ['openFilesOnly', 'workspace'];

export interface ServerSettings {
  enable: boolean;
  select: string[];
  ignore: string[];
  severity: Record<string, Severity>;
  lintOnChange: boolean;
  debounceMs: number;
  probe: { enable: boolean; timeout: number };
  showSyntaxErrors: boolean;
  diagnosticMode: DiagnosticMode;
  inlayHints: { shapes: InlayShapes };
  exclude: string[];
}

/** Where inlay hints show the shape after an assignment. */
export type InlayShapes = 'forward' | 'all' | 'off';
const INLAY_SHAPES: readonly InlayShapes[] = ['forward', 'all', 'off'];

export const DEFAULT_SETTINGS: Readonly<ServerSettings> = Object.freeze({
  enable: true,
  select: [],
  ignore: [],
  severity: {},
  lintOnChange: true,
  debounceMs: 150,
  probe: Object.freeze({ enable: true, timeout: 20 }),
  // Pylance already reports syntax errors in VS Code (Ruff's extension has the same setting).
  showSyntaxErrors: false,
  diagnosticMode: 'openFilesOnly',
  inlayHints: Object.freeze({ shapes: 'forward' }),
  exclude: [],
});

export const MAX_DEBOUNCE_MS = 5000;
export const MAX_PROBE_TIMEOUT = 600;

/** Settings whose change needs a new server process (the rest are sent to the running server). */
export const RESTART_SETTINGS = ['gradguard.interpreter', 'gradguard.importStrategy'] as const;

export type ImportStrategy = 'useBundled' | 'fromEnvironment';

const CODE = /^GG\d{0,3}$/;
const SEVERITY_ALIASES: Record<string, Severity> = {
  error: 'error',
  warning: 'warning',
  warn: 'warning',
  information: 'information',
  info: 'information',
  hint: 'hint',
};

/** Reads one key below `gradguard.`, e.g. "select" or "probe.enable" (WorkspaceConfiguration.get). */
export type SettingReader = (key: string) => unknown;

export interface SettingProblem {
  key: string;
  message: string;
}

function codeList(value: unknown, key: string, problems: SettingProblem[]): string[] {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : undefined;
  if (items === undefined) {
    problems.push({ key, message: `gradguard.${key} must be a list of rule codes such as "GG202"` });
    return [];
  }
  const codes: string[] = [];
  for (const item of items) {
    const code = typeof item === 'string' ? item.trim().toUpperCase() : '';
    if (code === '' && typeof item === 'string') continue;
    if (!CODE.test(code)) {
      problems.push({
        key,
        message: `gradguard.${key}: ignoring ${JSON.stringify(item)}, not a rule code or prefix like "GG2"`,
      });
      continue;
    }
    if (!codes.includes(code)) codes.push(code);
  }
  return codes;
}

function severityMap(value: unknown, problems: SettingProblem[]): Record<string, Severity> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push({ key: 'severity', message: 'gradguard.severity must be an object like {"GG202": "error"}' });
    return {};
  }
  const out: Record<string, Severity> = {};
  for (const [rawCode, rawLevel] of Object.entries(value as Record<string, unknown>)) {
    const code = rawCode.trim().toUpperCase();
    const level = typeof rawLevel === 'string' ? SEVERITY_ALIASES[rawLevel.trim().toLowerCase()] : undefined;
    if (!CODE.test(code) || code === 'GG' || level === undefined) {
      problems.push({
        key: 'severity',
        message: `gradguard.severity: ignoring ${JSON.stringify(rawCode)}: ${JSON.stringify(rawLevel)} (use a rule code and one of error, warning, information, hint)`,
      });
      continue;
    }
    out[code] = level;
  }
  return out;
}

function diagnosticMode(value: unknown, problems: SettingProblem[]): DiagnosticMode {
  if (value === undefined || value === null) return DEFAULT_SETTINGS.diagnosticMode;
  if (typeof value === 'string' && (DIAGNOSTIC_MODES as readonly string[]).includes(value))
    return value as DiagnosticMode;
  problems.push({
    key: 'diagnosticMode',
    message: `gradguard.diagnosticMode: ignoring ${JSON.stringify(value)} (use "openFilesOnly" or "workspace")`,
  });
  return DEFAULT_SETTINGS.diagnosticMode;
}

function bool(value: unknown, fallback: boolean): boolean {
  return typeof value === 'boolean' ? value : fallback;
}

function bounded(value: unknown, fallback: number, min: number, max: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return fallback;
  const n = integer ? Math.round(value) : value;
  return Math.min(max, Math.max(min, n));
}

/**
 * The server's settings from the `gradguard.*` settings. Anything that would run user code (the probe)
 * is off unless the workspace is trusted, whatever the setting says.
 */
export function toServerSettings(
  read: SettingReader,
  trusted: boolean,
  problems: SettingProblem[] = [],
): ServerSettings {
  return {
    enable: bool(read('enable'), DEFAULT_SETTINGS.enable),
    select: codeList(read('select'), 'select', problems),
    ignore: codeList(read('ignore'), 'ignore', problems),
    severity: severityMap(read('severity'), problems),
    lintOnChange: bool(read('lintOnChange'), DEFAULT_SETTINGS.lintOnChange),
    debounceMs: bounded(read('debounceMs'), DEFAULT_SETTINGS.debounceMs, 0, MAX_DEBOUNCE_MS, true),
    probe: {
      enable: trusted && bool(read('probe.enable'), DEFAULT_SETTINGS.probe.enable),
      timeout: bounded(read('probe.timeout'), DEFAULT_SETTINGS.probe.timeout, 1, MAX_PROBE_TIMEOUT, false),
    },
    showSyntaxErrors: bool(read('showSyntaxErrors'), DEFAULT_SETTINGS.showSyntaxErrors),
    diagnosticMode: diagnosticMode(read('diagnosticMode'), problems),
    inlayHints: { shapes: inlayShapes(read('inlayHints.shapes'), problems) },
    exclude: globList(read('exclude'), problems),
  };
}

/** `gradguard.exclude`: glob patterns (strings); anything else is dropped and reported. */
function globList(value: unknown, problems: SettingProblem[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.push({ key: 'exclude', message: 'gradguard.exclude must be a list of glob patterns such as "build/**"' });
    return [];
  }
  const out: string[] = [];
  for (const item of value) {
    if (typeof item !== 'string') {
      problems.push({ key: 'exclude', message: `gradguard.exclude: ignoring ${JSON.stringify(item)}, not a pattern` });
      continue;
    }
    const pattern = item.trim();
    if (pattern !== '' && !out.includes(pattern)) out.push(pattern);
  }
  return out;
}

function inlayShapes(value: unknown, problems: SettingProblem[]): InlayShapes {
  if (value === undefined || value === null) return DEFAULT_SETTINGS.inlayHints.shapes;
  if (typeof value === 'string' && (INLAY_SHAPES as readonly string[]).includes(value)) return value as InlayShapes;
  problems.push({
    key: 'inlayHints.shapes',
    message: `gradguard.inlayHints.shapes: ignoring ${JSON.stringify(value)} (use forward, all or off)`,
  });
  return DEFAULT_SETTINGS.inlayHints.shapes;
}

export function importStrategy(value: unknown): ImportStrategy {
  return value === 'fromEnvironment' ? 'fromEnvironment' : 'useBundled';
}

/**
 * initializationOptions sent with the initialize request. `commandLinks`: VS Code opens
 * `command:gradguard.showDocumentation?...` links, so the server links rules to the local explanation
 * that way instead of to a file. `interpreter`: the interpreter (command and arguments) whose `sys.path`
 * the server reads installed packages from (it asks it once; without it, its own `sys.path`).
 */
export function initializationOptions(settings: ServerSettings, workspaceTrusted: boolean, interpreter?: string[]) {
  return { settings, workspaceTrusted, commandLinks: true, ...(interpreter?.length ? { interpreter } : {}) };
}

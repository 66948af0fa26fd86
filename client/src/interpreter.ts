// Which Python runs the server, and whether it can. No `vscode` import: unit-tested with node:test.

import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { ImportStrategy } from './settings';

export const MIN_PYTHON: readonly [number, number] = [3, 10];

export type InterpreterSource = 'setting' | 'pythonExtension' | 'path';

export interface Interpreter {
  /** Executable to spawn. */
  command: string;
  /** Arguments before `-m gradguard lsp` (from a setting such as ["py", "-3.12"]). */
  args: string[];
  source: InterpreterSource;
}

export interface ResolveInput {
  /** `gradguard.interpreter`: a path, a command on PATH, or a command with arguments as a list. */
  setting: unknown;
  /** The Python extension's active environment (its executable and any arguments), when installed. */
  pythonExtension?: readonly string[] | undefined;
  /** Only trusted workspaces use the Python extension's environment: it may live inside the workspace. */
  trusted: boolean;
  workspaceFolder?: string | undefined;
  home: string;
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
}

/** Expands `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~`. */
export function expandVariables(
  value: string,
  ctx: { workspaceFolder?: string | undefined; home: string; env: NodeJS.ProcessEnv },
): string {
  let out = value.replace(
    /\$\{(workspaceFolder|userHome|env:([A-Za-z_][A-Za-z0-9_]*))\}/g,
    (whole: string, name: string, envName: string | undefined) => {
      if (envName !== undefined) return ctx.env[envName] ?? '';
      if (name === 'userHome') return ctx.home;
      return ctx.workspaceFolder ?? whole;
    },
  );
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) out = ctx.home + out.slice(1);
  return out;
}

function settingParts(setting: unknown): string[] {
  if (typeof setting === 'string') return setting.trim() === '' ? [] : [setting.trim()];
  if (Array.isArray(setting)) return setting.filter((s): s is string => typeof s === 'string' && s.trim() !== '');
  return [];
}

/** Whether `gradguard.interpreter` names an interpreter (else the fallbacks apply). */
export function hasInterpreterSetting(setting: unknown): boolean {
  return settingParts(setting).length > 0;
}

export function defaultPython(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'python' : 'python3';
}

/** The setting, else the Python extension's environment (trusted workspaces only), else python3 on PATH. */
export function resolveInterpreter(input: ResolveInput): Interpreter {
  const fromSetting = settingParts(input.setting);
  if (fromSetting.length > 0) {
    const [command, ...args] = fromSetting.map((part) => expandVariables(part, input));
    return { command: normalizeCommand(command, input.workspaceFolder), args, source: 'setting' };
  }
  const fromExtension = input.trusted
    ? settingParts(input.pythonExtension ? [...input.pythonExtension] : undefined)
    : [];
  if (fromExtension.length > 0) {
    const [command, ...args] = fromExtension;
    return { command, args, source: 'pythonExtension' };
  }
  return { command: defaultPython(input.platform), args: [], source: 'path' };
}

/** A relative path with a separator ("./.venv/bin/python") is relative to the workspace folder. */
function normalizeCommand(command: string, workspaceFolder: string | undefined): string {
  const hasSeparator = command.includes('/') || command.includes('\\');
  if (hasSeparator && !path.isAbsolute(command) && workspaceFolder) return path.join(workspaceFolder, command);
  return command;
}

/** Prints the version on the first line and whether `gradguard` can be imported on the second. */
export const CHECK_SCRIPT =
  'import sys; print(sys.version_info[:2]); import importlib.util; print(importlib.util.find_spec("gradguard") is not None)';

export interface CheckOutput {
  version?: [number, number];
  hasGradguard?: boolean;
}

export function parseCheckOutput(stdout: string): CheckOutput {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim());
  const m = /^\(\s*(\d+)\s*,\s*(\d+)\s*\)$/.exec(lines[0] ?? '');
  const out: CheckOutput = {};
  if (m) out.version = [Number(m[1]), Number(m[2])];
  if (lines[1] === 'True') out.hasGradguard = true;
  else if (lines[1] === 'False') out.hasGradguard = false;
  return out;
}

export function versionAtLeast(
  version: readonly [number, number],
  min: readonly [number, number] = MIN_PYTHON,
): boolean {
  return version[0] > min[0] || (version[0] === min[0] && version[1] >= min[1]);
}

export type CheckResult =
  | { ok: true; version: [number, number] }
  | { ok: false; reason: 'missing' | 'failed' | 'tooOld' | 'noGradguard'; message: string; version?: [number, number] };

export interface ExecOutcome {
  stdout: string;
  stderr: string;
  /** Set when the process could not run or exited non-zero; "ENOENT"/"EACCES" when it could not start. */
  error?: { code?: string | number; message: string };
}

export type Exec = (command: string, args: string[], env: NodeJS.ProcessEnv) => Promise<ExecOutcome>;

export const execPython: Exec = (command, args, env) =>
  new Promise((resolve) => {
    execFile(command, args, { env, timeout: 15000, windowsHide: true }, (error, stdout, stderr) => {
      const err = error as (Error & { code?: string | number }) | null;
      resolve({
        stdout,
        stderr,
        error: err ? { code: err.code, message: err.message } : undefined,
      });
    });
  });

export function describe(interpreter: Interpreter): string {
  return [interpreter.command, ...interpreter.args].join(' ');
}

/** "/usr/bin/python3.12 (set by gradguard.interpreter; Python 3.12, useBundled)": the status bar's tooltip. */
export function describeRunning(
  interpreter: Interpreter,
  version: readonly number[],
  strategy: ImportStrategy,
): string {
  return `${describe(interpreter)} (${WHERE[interpreter.source]}; Python ${version.join('.')}, ${strategy})`;
}

export const WHERE: Record<InterpreterSource, string> = {
  setting: 'set by gradguard.interpreter',
  pythonExtension: "the Python extension's active environment",
  path: 'found on PATH',
};

/** Runs the interpreter once to see that it exists, is Python >= 3.10 and can import gradguard. */
export async function checkInterpreter(
  interpreter: Interpreter,
  env: NodeJS.ProcessEnv,
  strategy: ImportStrategy,
  exec: Exec = execPython,
): Promise<CheckResult> {
  const name = `"${describe(interpreter)}" (${WHERE[interpreter.source]})`;
  const result = await exec(interpreter.command, [...interpreter.args, '-c', CHECK_SCRIPT], env);
  const parsed = parseCheckOutput(result.stdout);
  if (result.error && (result.error.code === 'ENOENT' || result.error.code === 'EACCES')) {
    // Say what went wrong first: the interpreter is not there (or not executable), whatever its version.
    const cause = result.error.code === 'ENOENT' ? 'no such file or command' : 'permission denied';
    return {
      ok: false,
      reason: 'missing',
      message:
        `gradguard could not start the interpreter ${name}: ${cause} (${result.error.code}). ` +
        `Set "gradguard.interpreter" to a Python ${MIN_PYTHON.join('.')}+ executable, or select one.`,
    };
  }
  if (!parsed.version) {
    const detail = (result.stderr || result.error?.message || result.stdout).trim().split('\n').slice(-1)[0] ?? '';
    return {
      ok: false,
      reason: 'failed',
      message: `gradguard could not run the interpreter ${name}: ${detail || 'no output'}. Set "gradguard.interpreter" to a Python 3.10+ executable.`,
    };
  }
  if (!versionAtLeast(parsed.version)) {
    return {
      ok: false,
      reason: 'tooOld',
      version: parsed.version,
      message:
        `gradguard needs Python ${MIN_PYTHON.join('.')} or newer, but the interpreter ${name} is Python ` +
        `${parsed.version.join('.')}. Set "gradguard.interpreter" to a newer Python.`,
    };
  }
  if (parsed.hasGradguard === false) {
    return {
      ok: false,
      reason: 'noGradguard',
      version: parsed.version,
      message:
        strategy === 'fromEnvironment'
          ? `"gradguard.importStrategy" is "fromEnvironment", but gradguard is not installed for ${name}. ` +
            'Run "python -m pip install gradguard" in that environment, or use "useBundled".'
          : `The gradguard server bundled with the extension is missing (no bundled/libs). Rebuild the extension ` +
            'with "npm run package", or set "gradguard.importStrategy" to "fromEnvironment".',
    };
  }
  return { ok: true, version: parsed.version };
}

export function bundledLibs(extensionPath: string): string {
  return path.join(extensionPath, 'bundled', 'libs');
}

/** Environment for the server process: with useBundled, the bundled libraries come first on PYTHONPATH. */
export function serverEnvironment(
  strategy: ImportStrategy,
  extensionPath: string,
  base: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8' };
  if (strategy === 'useBundled') {
    const sep = platform === 'win32' ? ';' : ':';
    const existing = base.PYTHONPATH ? `${sep}${base.PYTHONPATH}` : '';
    env.PYTHONPATH = bundledLibs(extensionPath) + existing;
  }
  return env;
}

/** Arguments that start the language server on stdio. */
export function serverArgs(interpreter: Interpreter): string[] {
  return [...interpreter.args, '-m', 'gradguard', 'lsp'];
}

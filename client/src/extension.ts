// The gradguard VS Code extension: starts `<python> -m gradguard lsp` over stdio with vscode-languageclient.

import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import {
  checkInterpreter,
  describeRunning,
  hasInterpreterSetting,
  Interpreter,
  resolveInterpreter,
  serverArgs,
  serverEnvironment,
} from './interpreter';
import { RestartBudget } from './restarts';
import { importStrategy, initializationOptions, RESTART_SETTINGS, SettingProblem, toServerSettings } from './settings';

const SECTION = 'gradguard';
const PYTHON_EXTENSION = 'ms-python.python';
const CMD_SHOW_DOCS = 'gradguard.showDocumentation';
const CMD_EXPLAIN = 'gradguard.explainRule';

/**
 * vscode-languageclient logs every exit of the server process as an error, also the normal one after
 * shutdown/exit on a restart ("Server process exited with code 0."): that one is information.
 */
class GradguardClient extends LanguageClient {
  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    if (message === 'Server process exited with code 0.') {
      this.info(message, data, false);
      return;
    }
    super.error(message, data, showNotification);
  }
}

type Status = 'starting' | 'ready' | 'error' | 'stopped';

interface PythonEnvironmentApi {
  environments: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string };
    resolveEnvironment(
      env: { id: string; path: string } | string,
    ): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
  };
}

let client: LanguageClient | undefined;
let output: vscode.OutputChannel;
let statusItem: vscode.StatusBarItem;
let extensionPath = '';
let queue: Promise<void> = Promise.resolve();
let stopping = false;
let pythonApiListener: vscode.Disposable | undefined;
const reportedProblems = new Set<string>();
const restartBudget = new RestartBudget();

function log(message: string): void {
  output.appendLine(`[client ${new Date().toISOString()}] ${message}`);
}

/** `detail` is the state's description without the state's name ("/usr/bin/python3 (...)"), which the item adds. */
function setStatus(status: Status, detail: string): void {
  const icon = { starting: '$(sync~spin)', ready: '$(check)', error: '$(error)', stopped: '$(circle-slash)' }[status];
  statusItem.text = `${icon} gradguard`;
  statusItem.tooltip = `gradguard ${status}: ${detail}\nClick to open the server log.`;
  statusItem.backgroundColor = status === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  statusItem.accessibilityInformation = { label: `gradguard ${status}: ${detail}` };
  statusItem.show();
}

function folderPath(resource?: vscode.Uri): string | undefined {
  const folder = resource ? vscode.workspace.getWorkspaceFolder(resource) : vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.fsPath;
}

/** The server's settings for a scope; bad values are reported once in the log and a warning. */
function settingsFor(scope?: vscode.Uri) {
  const config = vscode.workspace.getConfiguration(SECTION, scope ?? null);
  const problems: SettingProblem[] = [];
  const settings = toServerSettings((key) => config.get(key), vscode.workspace.isTrusted, problems);
  for (const problem of problems) {
    if (reportedProblems.has(problem.message)) continue;
    reportedProblems.add(problem.message);
    log(problem.message);
    void vscode.window.showWarningMessage(problem.message);
  }
  return settings;
}

function isPythonEnvironmentApi(value: unknown): value is PythonEnvironmentApi {
  return typeof value === 'object' && value !== null && 'environments' in value && !!value.environments;
}

async function pythonExtensionApi(): Promise<PythonEnvironmentApi | undefined> {
  const ext = vscode.extensions.getExtension<PythonEnvironmentApi>(PYTHON_EXTENSION);
  if (!ext) return undefined;
  try {
    // an extension's exports are whatever its activate returned: possibly nothing
    const api: unknown = ext.isActive ? ext.exports : await ext.activate();
    return isPythonEnvironmentApi(api) ? api : undefined;
  } catch (err) {
    log(`could not use the Python extension: ${String(err)}`);
    return undefined;
  }
}

async function pythonExtensionInterpreter(resource?: vscode.Uri): Promise<string[] | undefined> {
  const api = await pythonExtensionApi();
  if (!api) return undefined;
  if (!pythonApiListener) {
    pythonApiListener = api.environments.onDidChangeActiveEnvironmentPath(() => {
      if (!hasInterpreterSetting(vscode.workspace.getConfiguration(SECTION, firstFolder()).get('interpreter'))) {
        void restart("the Python extension's environment changed");
      }
    });
  }
  try {
    const active = api.environments.getActiveEnvironmentPath(resource);
    const resolved = await api.environments.resolveEnvironment(active);
    const exe = resolved?.executable.uri?.fsPath;
    return exe ? [exe] : undefined;
  } catch (err) {
    log(`could not resolve the Python extension's environment: ${String(err)}`);
    return undefined;
  }
}

/** The first workspace folder: resource-scoped settings of a single-folder workspace are read for it. */
function firstFolder(): vscode.Uri | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri;
}

async function findInterpreter(): Promise<Interpreter> {
  const config = vscode.workspace.getConfiguration(SECTION, firstFolder());
  const trusted = vscode.workspace.isTrusted;
  const setting = config.get<unknown>('interpreter');
  return resolveInterpreter({
    setting,
    pythonExtension: !hasInterpreterSetting(setting) && trusted ? await pythonExtensionInterpreter() : undefined,
    trusted,
    workspaceFolder: folderPath(),
    home: os.homedir(),
    env: process.env,
    platform: process.platform,
  });
}

async function showStartError(message: string): Promise<void> {
  // With the Python extension installed, its interpreter picker is the natural way to choose one.
  const picker = vscode.extensions.getExtension(PYTHON_EXTENSION) ? ['Select Interpreter'] : [];
  const choice = await vscode.window.showErrorMessage(message, 'Open Settings', ...picker, 'Show Log');
  if (choice === 'Open Settings') {
    // `@id:` shows exactly this setting, in whichever tab (User, Remote, Workspace) the editor opens.
    await vscode.commands.executeCommand('workbench.action.openSettings', '@id:gradguard.interpreter');
  } else if (choice === 'Select Interpreter') {
    // The server restarts when the Python extension's environment changes (unless gradguard.interpreter is set).
    await vscode.commands.executeCommand('python.setInterpreter');
  } else if (choice === 'Show Log') {
    output.show(true);
  }
}

/** Rule explanations shown as read-only markdown documents (gradguard-rule:/GG202.md). */
const RULE_SCHEME = 'gradguard-rule';
const explanations = new Map<string, string>();
const explanationChanged = new vscode.EventEmitter<vscode.Uri>();

async function showExplanation(code: string, markdown: string): Promise<void> {
  const uri = vscode.Uri.from({ scheme: RULE_SCHEME, path: `/${code.replace(/[^A-Za-z0-9]/g, '')}.md` });
  explanations.set(uri.path, markdown);
  explanationChanged.fire(uri);
  try {
    await vscode.commands.executeCommand('markdown.showPreview', uri);
  } catch {
    await vscode.window.showTextDocument(uri, { preview: true });
  }
}

/**
 * Resolves once a client that is starting (for example restarting itself after a crash) has finished
 * starting, or after `timeoutMs`. vscode-languageclient refuses to stop a starting client, and it marks
 * itself running before it registers its commands: stopped in between, it would go on to register them
 * next to the new client's ("command 'gradguard.explainRule' already exists"). `start()` of a client that
 * is starting or running returns the promise of that start, which resolves after the registrations.
 */
async function finishStarting(languageClient: LanguageClient, timeoutMs: number): Promise<void> {
  if (languageClient.state === State.Stopped) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolveTimeout) => {
    timer = setTimeout(resolveTimeout, timeoutMs);
  });
  await Promise.race([
    languageClient.start().then(
      () => undefined,
      () => undefined,
    ),
    timeout,
  ]);
  clearTimeout(timer);
}

async function stopClient(): Promise<void> {
  const old = client;
  client = undefined;
  if (!old) return;
  stopping = true;
  try {
    await finishStarting(old, 15000);
    await old.stop(3000);
  } catch (err) {
    log(`stopping the server: ${String(err)}`);
  } finally {
    stopping = false;
  }
  await old.dispose(1000).catch(() => undefined);
}

async function startClient(reason: string): Promise<void> {
  await stopClient();
  restartBudget.reset();
  setStatus('starting', reason);
  log(`starting the server: ${reason}`);

  const config = vscode.workspace.getConfiguration(SECTION, firstFolder());
  const strategy = importStrategy(config.get('importStrategy'));
  const interpreter = await findInterpreter();
  const env = serverEnvironment(strategy, extensionPath, process.env);
  const check = await checkInterpreter(interpreter, env, strategy);
  if (!check.ok) {
    log(check.message);
    setStatus('error', check.message);
    void showStartError(check.message);
    return;
  }
  const description = describeRunning(interpreter, check.version, strategy);
  log(`interpreter: ${description}`);

  const serverOptions: ServerOptions = {
    command: interpreter.command,
    args: serverArgs(interpreter),
    // No `transport`: stdio without the `--stdio` argument TransportKind.stdio would append.
    options: { env, cwd: folderPath() },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'python' },
      { scheme: 'untitled', language: 'python' },
      { scheme: 'vscode-notebook-cell', language: 'python' },
    ],
    diagnosticCollectionName: SECTION,
    outputChannel: output,
    traceOutputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationOptions: initializationOptions(settingsFor(), vscode.workspace.isTrusted, [
      interpreter.command,
      ...interpreter.args,
    ]),
    // Hovers link to the rule's local explanation through this one command, and may run no other.
    markdown: { isTrusted: { enabledCommands: [CMD_SHOW_DOCS] }, supportHtml: false },
    errorHandler: {
      error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
      closed: () => {
        if (restartBudget.crashed(Date.now())) {
          log('the server stopped unexpectedly; restarting it');
          return { action: CloseAction.Restart };
        }
        return {
          action: CloseAction.DoNotRestart,
          message: `The gradguard server stopped ${restartBudget.max + 1} times in 3 minutes and is not restarted again. See the "gradguard" output, then run "gradguard: Restart Server".`,
        };
      },
    },
    middleware: {
      workspace: {
        // The server asks for section "gradguard": answer with the same mapping as initializationOptions.
        configuration: async (params, token, next) => {
          const answers: unknown = await next(params, token);
          if (!Array.isArray(answers)) return answers as ResponseError;
          return params.items.map((item, i): unknown =>
            item.section === SECTION
              ? settingsFor(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
              : answers[i],
          );
        },
      },
      executeCommand: async (command, args, next): Promise<unknown> => {
        // From the command palette (no arguments): act on the active editor, ask for the rule code.
        if ((command === 'gradguard.fixAll' || command === 'gradguard.runProbe') && args.length === 0) {
          const editor = vscode.window.activeTextEditor;
          if (!editor) return undefined;
          args = [editor.document.uri.toString()];
        }
        if (command === CMD_SHOW_DOCS) {
          // The Problems panel's code link, the hover's link and "Show documentation for GGxxx": the local
          // explanation as a markdown preview, as "gradguard: Explain Rule" shows it (never a web page).
          const code = typeof args[0] === 'string' ? args[0] : undefined;
          if (!code) return undefined;
          const explanation: unknown = await next(CMD_EXPLAIN, [code]);
          if (typeof explanation === 'string') await showExplanation(code, explanation);
          return explanation;
        }
        if (command === CMD_EXPLAIN) {
          if (args.length === 0) {
            const code = await vscode.window.showInputBox({
              prompt: 'Rule code to explain',
              placeHolder: 'GG202',
              validateInput: (value) => (/^\s*GG\d{3}\s*$/i.test(value) ? undefined : 'A rule code such as GG202'),
            });
            if (!code) return undefined;
            args = [code.trim().toUpperCase()];
          }
          const explanation: unknown = await next(command, args);
          if (typeof explanation === 'string') await showExplanation(String(args[0]), explanation);
          return explanation;
        }
        return (await next(command, args)) as unknown;
      },
    },
  };

  const newClient = new GradguardClient(SECTION, 'gradguard', serverOptions, clientOptions);
  newClient.onDidChangeState((event) => {
    if (client !== newClient) return;
    if (event.newState === State.Running) setStatus('ready', description);
    else if (event.newState === State.Starting) setStatus('starting', description);
    else if (!stopping) setStatus('error', 'the server stopped; click to see its log');
  });
  client = newClient;
  try {
    await newClient.start();
  } catch (err) {
    const message = `gradguard: the server did not start with ${description}: ${String(err)}`;
    log(message);
    if (client === newClient) setStatus('error', message);
    void showStartError(message);
  }
}

/** Queue a (re)start so concurrent triggers never run two servers. */
function restart(reason: string): Promise<void> {
  queue = queue.then(
    () => startClient(reason),
    () => startClient(reason),
  );
  return queue;
}

function onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
  if (RESTART_SETTINGS.some((key) => event.affectsConfiguration(key))) {
    void restart('interpreter settings changed');
    return;
  }
  if (event.affectsConfiguration(SECTION) && client?.isRunning()) {
    reportedProblems.clear();
    // The server pulls the new values with workspace/configuration; the payload carries them as well.
    void client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { [SECTION]: settingsFor() },
    });
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionPath = context.extensionPath;
  output = vscode.window.createOutputChannel('gradguard');
  statusItem = vscode.window.createStatusBarItem('gradguard.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'gradguard';
  statusItem.command = 'gradguard.showLog';
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand('gradguard.restart', () => restart('restart command')),
    vscode.commands.registerCommand('gradguard.showLog', () => {
      output.show(true);
    }),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    vscode.workspace.onDidGrantWorkspaceTrust(() => restart('workspace trusted')),
    {
      dispose: () => {
        pythonApiListener?.dispose();
      },
    },
    explanationChanged,
    vscode.workspace.registerTextDocumentContentProvider(RULE_SCHEME, {
      onDidChange: explanationChanged.event,
      provideTextDocumentContent: (uri) => explanations.get(uri.path) ?? '',
    }),
  );
  await restart('activation');
}

export async function deactivate(): Promise<void> {
  await queue.catch(() => undefined);
  await stopClient();
}

// The gradguard VS Code extension: starts `<python> -m gradguard lsp` over stdio with vscode-languageclient.

import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import {
  checkInterpreter,
  describe,
  hasInterpreterSetting,
  Interpreter,
  resolveInterpreter,
  serverArgs,
  serverEnvironment,
} from './interpreter';
import { RestartBudget } from './restarts';
import {
  importStrategy,
  initializationOptions,
  RESTART_SETTINGS,
  SettingProblem,
  toServerSettings,
} from './settings';

const SECTION = 'gradguard';
const PYTHON_EXTENSION = 'ms-python.python';

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

function setStatus(status: Status, detail: string): void {
  const icon = { starting: '$(sync~spin)', ready: '$(check)', error: '$(error)', stopped: '$(circle-slash)' }[status];
  statusItem.text = `${icon} gradguard`;
  statusItem.tooltip = `gradguard: ${detail}\nClick to open the server log.`;
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

async function pythonExtensionApi(): Promise<PythonEnvironmentApi | undefined> {
  const ext = vscode.extensions.getExtension<PythonEnvironmentApi>(PYTHON_EXTENSION);
  if (!ext) return undefined;
  try {
    const api = ext.isActive ? ext.exports : await ext.activate();
    return api?.environments ? api : undefined;
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
      if (!hasInterpreterSetting(vscode.workspace.getConfiguration(SECTION).get('interpreter'))) {
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

async function findInterpreter(): Promise<Interpreter> {
  const config = vscode.workspace.getConfiguration(SECTION);
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
  const choice = await vscode.window.showErrorMessage(message, 'Open Settings', 'Show Log');
  if (choice === 'Open Settings') {
    await vscode.commands.executeCommand('workbench.action.openSettings', 'gradguard.interpreter');
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

async function stopClient(): Promise<void> {
  const old = client;
  client = undefined;
  if (!old) return;
  stopping = true;
  try {
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
  setStatus('starting', `starting (${reason})`);
  log(`starting the server: ${reason}`);

  const config = vscode.workspace.getConfiguration(SECTION);
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
  const version = check.version.join('.');
  const description = `${describe(interpreter)} (Python ${version}, ${strategy})`;
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
    initializationOptions: initializationOptions(settingsFor(), vscode.workspace.isTrusted),
    markdown: { isTrusted: false, supportHtml: false },
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
          const answers = await next(params, token);
          if (!Array.isArray(answers)) return answers;
          return params.items.map((item, i) =>
            item.section === SECTION ? settingsFor(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined) : answers[i],
          );
        },
      },
      executeCommand: async (command, args, next) => {
        // From the command palette (no arguments): act on the active editor, ask for the rule code.
        if ((command === 'gradguard.fixAll' || command === 'gradguard.runProbe') && args.length === 0) {
          const editor = vscode.window.activeTextEditor;
          if (!editor) return undefined;
          args = [editor.document.uri.toString()];
        }
        if (command === 'gradguard.explainRule') {
          if (args.length === 0) {
            const code = await vscode.window.showInputBox({
              prompt: 'Rule code to explain',
              placeHolder: 'GG202',
              validateInput: (value) => (/^\s*GG\d{3}\s*$/i.test(value) ? undefined : 'A rule code such as GG202'),
            });
            if (!code) return undefined;
            args = [code.trim().toUpperCase()];
          }
          const explanation = await next(command, args);
          if (typeof explanation === 'string') await showExplanation(String(args[0]), explanation);
          return explanation;
        }
        return next(command, args);
      },
    },
  };

  const newClient = new LanguageClient(SECTION, 'gradguard', serverOptions, clientOptions);
  newClient.onDidChangeState((event) => {
    if (client !== newClient) return;
    if (event.newState === State.Running) setStatus('ready', `ready: ${description}`);
    else if (event.newState === State.Starting) setStatus('starting', `starting: ${description}`);
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
    vscode.commands.registerCommand('gradguard.showLog', () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    vscode.workspace.onDidGrantWorkspaceTrust(() => restart('workspace trusted')),
    { dispose: () => pythonApiListener?.dispose() },
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

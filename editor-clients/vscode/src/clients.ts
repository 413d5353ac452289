// Owns the language clients: one `cellbox serve` per workspace folder, started
// when a document of that folder opens or a command needs it, stopped with
// the folder. Everything sent to a server goes through here.
import * as vscode from 'vscode';
import { DynamicFeature, ExecuteCommandRequest, LanguageClient, LanguageClientOptions, StaticFeature } from 'vscode-languageclient/node';
import { BlockStartedNotification, DisplayNotification, OutputNotification } from './protocol';
import { ProgressValue } from './steps';
import { Command, Notification } from './vocabulary';
import { Launch, ignoredServerCommand, launchFor, sameLaunch } from './launch';
import { workspaceVenvCellbox } from './serverCommand';

export const LANGUAGES = ['markdown', 'python', 'shellscript'];

export interface ServerEvents {
    output(params: OutputNotification): void;
    blockStarted(params: BlockStartedNotification): void;
    display(params: DisplayNotification): void;
    /** Work-done progress of `folder`'s server (a run's, or a step's such as building the environment). */
    progress(folder: vscode.WorkspaceFolder, token: string | number, value: ProgressValue): void;
}

class FolderClient extends LanguageClient {
    // The built-in feature would register each server command (cellbox.execute, …)
    // as a VS Code command, once per folder's client: the second registration
    // of the same id fails. This extension sends the commands itself, to the
    // server of the right folder, and the lenses point at its own command.
    // The feature is told by the request it registers, through the public API
    // (its class is not exported).
    override registerFeature(feature: StaticFeature | DynamicFeature<any>): void {
        if (DynamicFeature.is(feature) && feature.registrationType.method === ExecuteCommandRequest.method) {
            return;
        }
        super.registerFeature(feature);
    }
}

interface Started {
    folder: vscode.WorkspaceFolder;
    launch: Launch;
    client: Promise<LanguageClient | undefined>;
}

export class Clients implements vscode.Disposable {
    /** Keyed by folder URI; stored before the slow start so two callers never start two servers. */
    private readonly clients = new Map<string, Started>();
    /** Folders already warned that their cellbox.serverCommand is ignored: once is enough. */
    private readonly warned = new Set<string>();
    private readonly subscriptions: vscode.Disposable[] = [];
    /**
     * Folders whose server could not start: opening another of their files
     * does not try again (one message is enough), a command does.
     */
    private readonly failed = new Set<string>();
    private readonly lenses = new Map<string, readonly vscode.CodeLens[]>();
    private readonly lensesChanged = new vscode.EventEmitter<vscode.Uri>();
    /** Fires when the server's lenses for a document came in. */
    readonly onDidChangeLenses = this.lensesChanged.event;

    constructor(
        private readonly serverLog: vscode.OutputChannel,
        private readonly events: ServerEvents,
        /** The command the server's "▶ Run" lenses are pointed at instead of cellbox.execute. */
        private readonly lensCommand: string,
    ) {
        this.subscriptions.push(
            vscode.workspace.onDidOpenTextDocument((document) => this.startFor(document)),
            vscode.workspace.onDidChangeWorkspaceFolders((change) => {
                for (const folder of change.removed) {
                    void this.stop(folder);
                }
            }),
            vscode.workspace.onDidChangeConfiguration(async (change) => {
                if (change.affectsConfiguration('cellbox.serverCommand') || change.affectsConfiguration('cellbox.sandbox')) {
                    await this.restartChanged();
                }
            }),
            // Trust granted: the workspace's cellbox.sandbox values are sent from now on.
            vscode.workspace.onDidGrantWorkspaceTrust(() => this.restartChanged()),
        );
        vscode.workspace.textDocuments.forEach((document) => this.startFor(document));
    }

    /**
     * The folder's client, started on first use; undefined when its server
     * cannot start (the user is told why, each time). A start that failed is
     * not remembered: the next command tries again, so that cellbox installed
     * (or its setting fixed) since is found without reloading the window.
     */
    clientFor(folder: vscode.WorkspaceFolder): Promise<LanguageClient | undefined> {
        const key = folder.uri.toString();
        let started = this.clients.get(key);
        if (started === undefined) {
            const launch = launchFor(folder);
            const entry: Started = { folder, launch, client: this.start(folder, launch) };
            this.clients.set(key, entry);
            started = entry;
            void entry.client.then((client) => {
                if (client === undefined && this.clients.get(key) === entry) {
                    this.clients.delete(key);
                    this.failed.add(key);
                } else if (client !== undefined) {
                    this.failed.delete(key);
                }
            });
        }
        return started.client;
    }

    /** The server's code lenses last shown for a document (its blocks' "▶ Run" among them). */
    lensesOf(uri: vscode.Uri): readonly vscode.CodeLens[] {
        return this.lenses.get(uri.toString()) ?? [];
    }

    /** Whether the folder's server was started (or is starting). */
    has(folder: vscode.WorkspaceFolder): boolean {
        return this.clients.has(folder.uri.toString());
    }

    /** A server command with its one argument object, sent to the folder's server. */
    async send<T>(folder: vscode.WorkspaceFolder, command: string, argument: object): Promise<T | undefined> {
        const client = await this.clientFor(folder);
        if (client === undefined) {
            return undefined;
        }
        return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [argument] }) as Promise<T>;
    }

    async stopAll(): Promise<void> {
        const folders = [...this.clients.keys()];
        await Promise.all(folders.map((key) => this.stopKey(key)));
    }

    dispose(): void {
        this.lensesChanged.dispose();
        this.subscriptions.forEach((s) => s.dispose());
    }

    private startFor(document: vscode.TextDocument): void {
        if (document.uri.scheme !== 'file' || !LANGUAGES.includes(document.languageId)) {
            return;
        }
        const folder = vscode.workspace.getWorkspaceFolder(document.uri);
        if (folder !== undefined && !this.failed.has(folder.uri.toString())) {
            void this.clientFor(folder);
        }
    }

    /**
     * Restart the servers whose folder's launch (command, settings) is no
     * longer what they were started with; the others keep running.
     *
     * Comparing launches, not settings, is what keeps this safe: a block may
     * rewrite .vscode/settings.json, but a workspace's serverCommand is not
     * part of the launch (so it restarts nothing), and its cellbox.sandbox
     * only reaches the server as untrusted workspaceSettings. Such a restart
     * stops that workspace's own sandbox, which its blocks can do anyway.
     */
    private async restartChanged(): Promise<void> {
        const started = [...this.clients.entries()];
        started.forEach(([, { folder }]) => this.warnIfIgnored(folder));
        const changed = started.filter(([, { folder, launch }]) => !sameLaunch(launch, launchFor(folder)));
        await Promise.all(changed.map(([key]) => this.stopKey(key)));
        this.failed.clear();
        vscode.workspace.textDocuments.forEach((document) => this.startFor(document));
    }

    private warnIfIgnored(folder: vscode.WorkspaceFolder): void {
        const where = ignoredServerCommand(folder);
        if (where === undefined || this.warned.has(folder.uri.toString())) {
            return;
        }
        this.warned.add(folder.uri.toString());
        void vscode.window.showWarningMessage(
            `cellbox: cellbox.serverCommand in ${where} is ignored: it would run a program on this machine, and the workspace's ` +
                'files can be written by the code its blocks run. Set it in your user settings instead.',
        );
    }

    private async start(folder: vscode.WorkspaceFolder, launch: Launch): Promise<LanguageClient | undefined> {
        this.warnIfIgnored(folder);
        const command = launch.command;
        if (command === undefined) {
            const venv = workspaceVenvCellbox(folder);
            void vscode.window.showErrorMessage(
                venv === undefined
                    ? `cellbox: no cellbox command found for ${folder.name}: install cellbox on PATH, or set cellbox.serverCommand in your user settings.`
                    : `cellbox: no cellbox command on PATH for ${folder.name}. Its ${venv} is not started unasked, since the code its blocks run ` +
                          'can write it: if you trust it, name it in cellbox.serverCommand in your user settings.',
            );
            return undefined;
        }
        const options: LanguageClientOptions = {
            documentSelector: LANGUAGES.map((language) => ({ scheme: 'file', language, pattern: `${folder.uri.fsPath}/**/*` })),
            workspaceFolder: folder,
            initializationOptions: launch.initializationOptions,
            outputChannel: this.serverLog,
            middleware: {
                // Seen on the way to vscode-languageclient's own window progress, which still shows it.
                handleWorkDoneProgress: (token, value, next) => {
                    this.events.progress(folder, token, value);
                    next(token, value);
                },
                provideCodeLenses: async (document, token, next) => {
                    const lenses = await next(document, token);
                    for (const lens of lenses ?? []) {
                        if (lens.command?.command === Command.EXECUTE) {
                            lens.command = { ...lens.command, command: this.lensCommand };
                        }
                    }
                    this.lenses.set(document.uri.toString(), lenses ?? []);
                    this.lensesChanged.fire(document.uri);
                    return lenses;
                },
            },
        };
        const client = new FolderClient(
            'cellbox',
            `cellbox (${folder.name})`,
            { command: command.command, args: command.args, options: { cwd: folder.uri.fsPath } },
            options,
        );
        client.onNotification(Notification.OUTPUT, (params: OutputNotification) => this.events.output(params));
        client.onNotification(Notification.BLOCK_STARTED, (params: BlockStartedNotification) => this.events.blockStarted(params));
        client.onNotification(Notification.DISPLAY, (params: DisplayNotification) => this.events.display(params));
        try {
            await client.start();
            return client;
        } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            void vscode.window.showErrorMessage(
                `cellbox: the server for ${folder.name} did not start (${[command.command, ...command.args].join(' ')}): ${reason}`,
            );
            return undefined;
        }
    }

    private async stop(folder: vscode.WorkspaceFolder): Promise<void> {
        await this.stopKey(folder.uri.toString());
    }

    private async stopKey(key: string): Promise<void> {
        const client = this.clients.get(key)?.client;
        this.clients.delete(key);
        const started = await client;
        if (started?.isRunning()) {
            await started.stop();
        }
    }
}

// Owns the status bar item: the state of the sandbox of the folder being
// edited, in words that say what it can do now ("sandbox ready", "running
// block 2 · 3.1 s", "sandbox stopped"), from the server's cellbox.status and
// the blocks it says have started. In session mode, once the document being
// edited has a session, its state instead: "session idle", "session busy",
// "session dead (state lost)". While the server is on a slow step before a
// block can run, that step: "building environment (step 3/6): RUN …".
import * as path from 'path';
import * as vscode from 'vscode';
import { Clients } from './clients';
import { SessionInfo, StatusResult } from './protocol';
import { ProgressValue, Steps } from './steps';
import { Place, linesText } from './tracking';
import { Command, ContainerState } from './vocabulary';

/** The server's sandbox states in words; another state the engine reports is shown as "sandbox STATE". */
const WORDS: Record<string, string> = {
    [ContainerState.RUNNING]: 'sandbox ready',
    [ContainerState.STOPPED]: 'sandbox stopped',
    // No container: none was started yet, or Stop removed it (said apart, below).
    [ContainerState.ABSENT]: 'no sandbox yet (starts with the first run)',
    [ContainerState.FOREIGN]: 'sandbox name taken by another container',
};
const STOPPED_BY_USER = 'sandbox stopped';
/** The server's session states in words; another is shown as "session STATE". */
const SESSION_WORDS: Record<string, string> = {
    idle: 'session idle',
    busy: 'session busy',
    dead: 'session dead (state lost)',
};
const TICK_MS = 100;

interface RunningBlock {
    /** "block 2", or "lines 10-12" where the block is now. */
    what: () => string;
    startedAt: number;
}

export class SandboxStatus implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem('cellbox.sandbox', vscode.StatusBarAlignment.Left, 0);
    private readonly subscriptions: vscode.Disposable[] = [];
    /** Answers can come back out of order; only the latest request's is shown. */
    private generation = 0;
    /** The block running now, per folder; shown instead of the sandbox's state while it runs. */
    private readonly running = new Map<string, RunningBlock>();
    /** The step each folder's server is on, if any; shown before anything else. */
    private readonly steps = new Steps();
    /** Folders whose sandbox the user stopped (and that ran nothing since). */
    private readonly stopped = new Set<string>();
    private ticker: NodeJS.Timeout | undefined;
    /** The file last edited: the webview and output beside are no text editors of a file. */
    private lastFile: vscode.Uri | undefined;

    constructor(
        private readonly clients: Clients,
        /** The session a document's blocks run in. */
        private readonly sessionOf: (uri: vscode.Uri) => string,
    ) {
        this.item.name = 'cellbox sandbox';
        this.item.command = 'cellbox.showOutput';
        this.subscriptions.push(
            vscode.window.onDidChangeActiveTextEditor((editor) => {
                if (editor?.document.uri.scheme === 'file') {
                    this.lastFile = editor.document.uri;
                }
                // Looking at a file is no reason to start a server: show the state only where one runs.
                const folder = activeFolder();
                if (folder !== undefined && this.clients.has(folder)) {
                    void this.refresh(folder);
                } else {
                    this.generation++;
                    this.item.hide();
                }
            }),
        );
    }

    /** A block of `folder` started: "running block 2 · 0.0 s", ticking, until the next block or the run's end. */
    blockRunning(folder: vscode.WorkspaceFolder, blockNumber: number | null, place: () => Place | undefined): void {
        const what = () => {
            const where = place();
            return blockNumber !== null ? `block ${blockNumber}` : where ? linesText(where) : 'a block';
        };
        this.running.set(folder.uri.toString(), { what, startedAt: Date.now() });
        this.stopped.delete(folder.uri.toString());
        this.ticker ??= setInterval(() => this.tick(), TICK_MS);
        this.tick();
    }

    /** Work-done progress of `folder`'s server: a step (building the environment...) is shown while it goes. */
    progress(folder: vscode.WorkspaceFolder, token: string | number, value: ProgressValue): void {
        if (!this.steps.update(folder.uri.toString(), token, value)) {
            return;
        }
        if (this.showStep(folder) || value.kind !== 'end') {
            return;
        }
        // The step ended: the block running, if any, else the sandbox's state.
        this.tick();
        void this.refresh(folder);
    }

    /** Show the step of `folder` when it is the active one and its server is on one; whether it did. */
    private showStep(folder: vscode.WorkspaceFolder | undefined): boolean {
        const step = folder && this.steps.current(folder.uri.toString());
        if (folder === undefined || step === undefined || folder.uri.toString() !== activeFolder()?.uri.toString()) {
            return false;
        }
        this.generation++; // a cellbox.status answer on its way is older than this
        this.item.text = `$(sync~spin) cellbox: ${step}`;
        this.item.tooltip = `${folder.name}: its blocks run once this is done`;
        this.item.show();
        return true;
    }

    runEnded(folder: vscode.WorkspaceFolder): void {
        this.running.delete(folder.uri.toString());
    }

    /** The user stopped the folder's sandbox (or started it again). */
    setStopped(folder: vscode.WorkspaceFolder, stopped: boolean): void {
        if (stopped) {
            this.stopped.add(folder.uri.toString());
        } else {
            this.stopped.delete(folder.uri.toString());
        }
    }

    /** Ask the server of `folder` (by default the active editor's) for its sandbox's state. */
    async refresh(folder = activeFolder()): Promise<void> {
        const generation = ++this.generation;
        if (folder === undefined || this.running.has(folder.uri.toString()) || this.showStep(folder)) {
            return;
        }
        let text: string;
        let tooltip: string;
        try {
            const result = await this.clients.send<StatusResult>(folder, Command.STATUS, {});
            if (result === undefined) {
                return;
            }
            const mine = result.sandboxes.find((s) => samePath(s.workspace, folder.uri.fsPath)) ?? result.sandboxes[0];
            const state = mine?.state ?? ContainerState.ABSENT;
            const words = state === ContainerState.ABSENT && this.stopped.has(folder.uri.toString()) ? STOPPED_BY_USER : WORDS[state] ?? `sandbox ${state}`;
            text = `$(${state === ContainerState.RUNNING ? 'vm-running' : 'vm-outline'}) cellbox: ${words}`;
            tooltip = mine ? `${mine.container}\nimage ${mine.image}\n${mine.workspace}` : folder.uri.fsPath;
            const file = this.file(folder);
            const session = file && mergedSession(mine?.sessions?.filter((s) => s.name === this.sessionOf(file)) ?? []);
            if (file !== undefined && session !== undefined) {
                text = `$(${session.state === 'dead' ? 'debug-disconnect' : 'vm-running'}) cellbox: ${SESSION_WORDS[session.state] ?? `session ${session.state}`}`;
                tooltip = `${sessionTooltip(file, session)}\n\n${tooltip}`;
            }
        } catch (error) {
            text = '$(vm-outline) cellbox: ?';
            tooltip = error instanceof Error ? error.message : String(error);
        }
        if (generation === this.generation && !this.running.has(folder.uri.toString())) {
            this.item.text = text;
            this.item.tooltip = tooltip;
            this.item.show();
        }
    }

    /** The file of `folder` being edited (or edited last, while the output beside has the focus). */
    private file(folder: vscode.WorkspaceFolder): vscode.Uri | undefined {
        const active = vscode.window.activeTextEditor?.document.uri;
        if (active?.scheme === 'file') {
            this.lastFile = active;
        }
        const file = this.lastFile;
        return file && vscode.workspace.getWorkspaceFolder(file)?.uri.toString() === folder.uri.toString() ? file : undefined;
    }

    text(): string {
        return this.item.text;
    }

    private tick(): void {
        const folder = activeFolder();
        const block = folder && this.running.get(folder.uri.toString());
        if (this.running.size === 0) {
            clearInterval(this.ticker);
            this.ticker = undefined;
        }
        if (block === undefined || this.showStep(folder)) {
            return;
        }
        const seconds = ((Date.now() - block.startedAt) / 1000).toFixed(1);
        this.item.text = `$(sync~spin) cellbox: running ${block.what()} · ${seconds} s`;
        this.item.show();
    }

    dispose(): void {
        clearInterval(this.ticker);
        this.subscriptions.forEach((s) => s.dispose());
        this.item.dispose();
    }
}

/** A session's kernels (one per language: Python, bash) as one: busy if
 * any is, dead if all are; their blocks and memory added up. */
function mergedSession(kernels: SessionInfo[]): SessionInfo | undefined {
    if (kernels.length <= 1) {
        return kernels[0];
    }
    const states = kernels.map((k) => k.state);
    const memories = kernels.map((k) => k.memoryBytes).filter((m): m is number => typeof m === 'number');
    return {
        name: kernels[0].name,
        state: states.includes('busy') ? 'busy' : states.every((s) => s === 'dead') ? 'dead' : 'idle',
        blocksRun: kernels.reduce((sum, k) => sum + k.blocksRun, 0),
        memoryBytes: memories.length ? memories.reduce((a, b) => a + b, 0) : null,
    };
}

function sessionTooltip(file: vscode.Uri, session: SessionInfo): string {
    const memory = session.memoryBytes ? `, ${(session.memoryBytes / 2 ** 20).toFixed(0)} MiB` : '';
    const runs = `${session.blocksRun} block${session.blocksRun === 1 ? '' : 's'} run`;
    return `Session of ${path.basename(file.fsPath)} (Python blocks share its state): ${session.state}, ${runs}${memory}.\n` +
        'cellbox: Restart Session starts it afresh.';
}

export function activeFolder(): vscode.WorkspaceFolder | undefined {
    const uri = vscode.window.activeTextEditor?.document.uri;
    const folder = uri ? vscode.workspace.getWorkspaceFolder(uri) : undefined;
    return folder ?? (vscode.workspace.workspaceFolders?.length === 1 ? vscode.workspace.workspaceFolders[0] : undefined);
}

function samePath(a: string, b: string): boolean {
    return path.resolve(a) === path.resolve(b);
}

// Owns the status bar item: the state of the sandbox of the folder being
// edited, in words that say what it can do now ("sandbox ready", "running
// block 2 · 3.1 s", "sandbox stopped"), from the server's cellbox.status and
// the blocks it says have started.
import * as path from 'path';
import * as vscode from 'vscode';
import { Clients } from './clients';
import { StatusResult } from './protocol';
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
    /** Folders whose sandbox the user stopped (and that ran nothing since). */
    private readonly stopped = new Set<string>();
    private ticker: NodeJS.Timeout | undefined;

    constructor(private readonly clients: Clients) {
        this.item.name = 'cellbox sandbox';
        this.item.command = 'cellbox.showOutput';
        this.subscriptions.push(
            vscode.window.onDidChangeActiveTextEditor(() => {
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
        if (folder === undefined || this.running.has(folder.uri.toString())) {
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
        if (block === undefined) {
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

export function activeFolder(): vscode.WorkspaceFolder | undefined {
    const uri = vscode.window.activeTextEditor?.document.uri;
    const folder = uri ? vscode.workspace.getWorkspaceFolder(uri) : undefined;
    return folder ?? (vscode.workspace.workspaceFolders?.length === 1 ? vscode.workspace.workspaceFolders[0] : undefined);
}

function samePath(a: string, b: string): boolean {
    return path.resolve(a) === path.resolve(b);
}

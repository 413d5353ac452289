// Owns the runs in flight: each gets a runId of ours, so that Cancel can name
// it and the server's notifications for it reach its document's display, and
// remembers the document's version it was asked at, whose lines the server's
// ranges count (tracking.ts carries them to where the block is now). It
// remembers each document's session, as the server named it in its results.
import * as vscode from 'vscode';
import { ResponseError } from 'vscode-languageclient/node';
import { Clients } from './clients';
import { DisplayView } from './displayView';
import { InlineResults } from './inlineResults';
import { OutputView } from './outputView';
import { BlockStartedNotification, DisplayNotification, ExecuteArgument, ExecuteResult, OutputNotification } from './protocol';
import { RunLog } from './runLog';
import { SandboxStatus } from './sandboxStatus';
import { ChangeHistory, Place, toPlace } from './tracking';
import { Command } from './vocabulary';

// Engine, image and configuration errors: the server already tells the user
// with window/showMessage, so a second pop-up would only repeat it.
const SHOWN_BY_SERVER = new Set([-32001, -32002, -32003]);

interface Run {
    uri: vscode.Uri;
    folder: vscode.WorkspaceFolder;
    /** The document's version when the run was asked for. */
    version: number;
}

export class Runs implements vscode.Disposable {
    private readonly active = new Map<string, Run>();
    private count = 0;
    private readonly changed = new vscode.EventEmitter<void>();
    private readonly history = new ChangeHistory();
    /** Per document URI, the session its last block in one ran in. */
    private readonly sessions = new Map<string, string>();
    /**
     * Per document URI, the text output beside being brought into sight (it
     * opens in the group of the plots and tables, as another tab): a block's
     * plots, which may come before it is in sight, are brought forward after.
     */
    private readonly besideShown = new Map<string, Promise<unknown>>();
    /** Fires when a run starts or ends. */
    readonly onDidChange = this.changed.event;

    constructor(
        private readonly clients: Clients,
        private readonly display: InlineResults,
        private readonly beside: OutputView,
        private readonly log: RunLog,
        private readonly status: SandboxStatus,
        private readonly displays: DisplayView,
    ) {}

    /** The session of a document: the one its blocks last ran in, else the one the server names by its path. */
    sessionOf(uri: vscode.Uri): string {
        return this.sessions.get(uri.toString()) ?? uri.fsPath;
    }

    /** Run blocks of a document; the result, or undefined when the run could not happen (the user is told why). */
    async execute(argument: ExecuteArgument, what: string): Promise<ExecuteResult | undefined> {
        const uri = vscode.Uri.parse(argument.uri);
        const folder = vscode.workspace.getWorkspaceFolder(uri);
        if (folder === undefined) {
            void vscode.window.showErrorMessage('cellbox: only files inside an open workspace folder can run (its sandbox is that folder\'s).');
            return undefined;
        }
        // Our own id, unique in this window: the server's lenses send none.
        const runId = `vscode-${process.pid}-${++this.count}`;
        const version = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString())?.version ?? 0;
        const release = this.history.pin(uri, version);
        this.active.set(runId, { uri, folder, version });
        this.changed.fire();
        this.log.runStarted(runId, uri, what);
        try {
            const result = await this.clients.send<ExecuteResult>(folder, Command.EXECUTE, { ...argument, runId });
            if (result === undefined) {
                this.log.runFailed('no cellbox server for this folder');
                return undefined;
            }
            result.blocks.forEach((block, index) => {
                if (block.session) {
                    this.sessions.set(uri.toString(), block.session);
                }
                const place = block.range === null ? undefined : this.history.since(uri, version, toPlace(block.range, block.extent));
                this.display.blockFinished(uri, key(runId, index), place, block, block.blockNumber ?? null);
            });
            this.log.runFinished(result);
            return result;
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            this.log.runFailed(message);
            if (!(error instanceof ResponseError && SHOWN_BY_SERVER.has(error.code))) {
                void vscode.window.showErrorMessage(`cellbox: ${message}`);
            }
            return undefined;
        } finally {
            release();
            this.active.delete(runId);
            this.display.runEnded(runId);
            this.changed.fire();
            this.status.runEnded(folder);
            void this.status.refresh(folder);
        }
    }

    /** Cancel the runs of `folder` (all runs when undefined); how many the server knew. */
    async cancel(folder?: vscode.WorkspaceFolder): Promise<number> {
        const mine = [...this.active].filter(([, run]) => folder === undefined || run.folder.uri.toString() === folder.uri.toString());
        const answers = await Promise.all(
            mine.map(([runId, run]) => this.clients.send<{ cancelled: boolean }>(run.folder, Command.CANCEL, { runId }).catch(() => undefined)),
        );
        return answers.filter((answer) => answer?.cancelled).length;
    }

    isRunning(): boolean {
        return this.active.size > 0;
    }

    blockStarted(params: BlockStartedNotification): void {
        const run = this.active.get(params.runId);
        let place: Place | undefined;
        if (run !== undefined && params.range !== null) {
            place = this.history.since(run.uri, run.version, toPlace(params.range, params.extent));
        }
        this.log.blockStarted(run?.uri, params, place);
        if (run === undefined) {
            return;
        }
        const blockNumber = params.blockNumber ?? null;
        const runKey = key(params.runId, params.blockIndex);
        this.status.blockRunning(run.folder, blockNumber, () => this.display.placeOf(runKey));
        if (place !== undefined) {
            this.display.blockStarted(run.uri, key(params.runId, params.blockIndex), place, blockNumber);
            const shown = this.display.blocksOf(run.uri).find((b) => b.runKey === key(params.runId, params.blockIndex));
            const opening = this.beside.show(run.uri).then(() => shown && this.beside.revealBlock(run.uri, shown), () => undefined);
            this.besideShown.set(run.uri.toString(), opening);
        }
    }

    /** A rich output of a running block: kept with it, and drawn beside its document. */
    displayed(params: DisplayNotification): void {
        const run = this.active.get(params.runId);
        this.display.displayed(key(params.runId, params.blockIndex), params.display);
        if (run !== undefined) {
            void (this.besideShown.get(run.uri.toString()) ?? Promise.resolve()).then(() => this.displays.show(run.uri));
        }
    }

    output(params: OutputNotification): void {
        this.log.output(params.text);
        this.display.output(key(params.runId, params.blockIndex), params.text);
    }

    dispose(): void {
        this.changed.dispose();
        this.history.dispose();
    }
}

function key(runId: string, blockIndex: number): string {
    return `${runId}#${blockIndex}`;
}

// Owns the "cellbox" output channel: every run's output, appended as it
// arrives, between a line saying what runs and one saying how it ended.
import * as path from 'path';
import * as vscode from 'vscode';
import { BlockStartedNotification, ExecuteResult } from './protocol';
import { Place, codeLines } from './tracking';

/** What the test API reads back; older text is dropped past this. */
const KEPT_CHARS = 1_000_000;

export class RunLog implements vscode.Disposable {
    readonly channel = vscode.window.createOutputChannel('cellbox');
    private kept = '';

    runStarted(runId: string, uri: vscode.Uri, what: string): void {
        this.write(`\n▶ ${this.name(uri)}: ${what} (run ${runId})\n`);
    }

    /** A block starts; `place` is where it is now, which lines typed since the run was asked for may have moved. */
    blockStarted(uri: vscode.Uri | undefined, params: BlockStartedNotification, place: Place | undefined): void {
        const lines = place ? codeLines(place) : undefined;
        const where = lines && uri ? ` · ${this.name(uri)}:${lines.first + 1}-${lines.last + 1}` : '';
        const name = params.blockNumber != null ? `block ${params.blockNumber}` : `block ${params.blockIndex + 1}`;
        this.write(`── ${name} · ${params.language}${where}\n`);
    }

    output(text: string): void {
        this.write(text);
    }

    runFinished(result: ExecuteResult): void {
        const seconds = (result.durationMs / 1000).toFixed(2);
        const ending = this.kept.endsWith('\n') ? '' : '\n';
        this.write(`${ending}■ ${result.status} · exit ${result.exitCode} · ${seconds} s\n`);
    }

    runFailed(message: string): void {
        this.write(`■ failed: ${message}\n`);
    }

    text(): string {
        return this.kept;
    }

    dispose(): void {
        this.channel.dispose();
    }

    private name(uri: vscode.Uri): string {
        const folder = vscode.workspace.getWorkspaceFolder(uri);
        return folder ? path.relative(folder.uri.fsPath, uri.fsPath) : uri.fsPath;
    }

    private write(text: string): void {
        this.channel.append(text);
        this.kept = (this.kept + text).slice(-KEPT_CHARS);
    }
}

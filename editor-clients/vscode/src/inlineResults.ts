// Owns what a run shows in the editor: an `after` decoration on the last line
// of each block, "running… 1.2 s" (with its latest output) while it runs, then
// a one-line summary with the full output in its hover. Lines come only from
// the ranges the server sends; this module never looks for blocks itself.
import * as vscode from 'vscode';
import { BlockResult, Range, lastLineOf, linesOf } from './protocol';
import { BlockStatus, GLYPHS, Status } from './vocabulary';

type Look = 'running' | 'ok' | 'failed';

interface LineResult {
    look: Look;
    text: string;
    hover?: vscode.MarkdownString;
}

/** Where a block is, as the server says: its code, and all of it (fences or cell marker included). */
interface BlockPlace {
    range: Range;
    extent: Range | null;
}

interface RunningBlock {
    uri: string;
    line: number;
    startedAt: number;
    latestOutput: string;
}

const TICK_MS = 100;
const MAX_INLINE_CHARS = 120;

/** Statuses shown like success: a cancelled block did nothing wrong. */
const NOT_FAILED: readonly BlockStatus[] = [Status.OK, Status.NOT_EXECUTED, Status.CANCELLED];

export class InlineResults implements vscode.Disposable {
    /** Per document URI, the result shown at each line. */
    private readonly shown = new Map<string, Map<number, LineResult>>();
    /** Blocks running now, keyed by runId and block index. */
    private readonly running = new Map<string, RunningBlock>();
    private ticker: NodeJS.Timeout | undefined;
    private readonly looks: Record<Look, vscode.TextEditorDecorationType>;
    private readonly subscriptions: vscode.Disposable[] = [];

    constructor() {
        const after = (color: vscode.ThemeColor, fontStyle = 'normal') =>
            vscode.window.createTextEditorDecorationType({
                after: { color, fontStyle, margin: '0 0 0 2em' },
                rangeBehavior: vscode.DecorationRangeBehavior.ClosedOpen,
            });
        this.looks = {
            running: after(new vscode.ThemeColor('editorCodeLens.foreground'), 'italic'),
            ok: after(new vscode.ThemeColor('editorCodeLens.foreground')),
            failed: after(new vscode.ThemeColor('errorForeground')),
        };
        this.subscriptions.push(
            vscode.window.onDidChangeVisibleTextEditors(() => this.renderAll()),
            vscode.workspace.onDidChangeTextDocument((change) => this.followEdits(change)),
            vscode.workspace.onDidCloseTextDocument((document) => this.shown.delete(document.uri.toString())),
        );
    }

    blockStarted(uri: vscode.Uri, runId: string, blockIndex: number, place: BlockPlace): void {
        const block: RunningBlock = { uri: uri.toString(), line: lastLineOf(place.range), startedAt: Date.now(), latestOutput: '' };
        this.running.set(key(runId, blockIndex), block);
        this.clearBlock(block.uri, place);
        this.showRunning(block);
        this.ticker ??= setInterval(() => this.tick(), TICK_MS);
    }

    output(runId: string, blockIndex: number, text: string): void {
        const block = this.running.get(key(runId, blockIndex));
        if (block === undefined) {
            return;
        }
        const latest = lastNonEmptyLine(text);
        if (latest !== undefined) {
            block.latestOutput = latest;
            this.showRunning(block);
        }
    }

    blockFinished(uri: vscode.Uri, runId: string, blockIndex: number, result: BlockResult): void {
        const running = this.running.get(key(runId, blockIndex));
        this.running.delete(key(runId, blockIndex));
        if (result.range === null) {
            return;
        }
        // The server's lines are the document's when the run began: lines
        // added or removed above the block since have moved its running
        // result, and the block with it.
        const moved = running === undefined ? 0 : running.line - lastLineOf(result.range);
        this.clearBlock(uri.toString(), { range: result.range, extent: result.extent }, moved);
        this.set(uri.toString(), lastLineOf(result.range) + moved, {
            look: NOT_FAILED.includes(result.status) ? 'ok' : 'failed',
            text: summary(result),
            hover: fullOutput(result),
        });
    }

    /** A run is over: a block still shown as running got no result (the request failed), so take it away. */
    runEnded(runId: string): void {
        for (const [id, block] of this.running) {
            if (id.startsWith(`${runId}#`)) {
                this.running.delete(id);
                this.shown.get(block.uri)?.delete(block.line);
                this.render(block.uri);
            }
        }
    }

    /** What a user sees: the decoration text at each line of a document. */
    textsOf(uri: vscode.Uri): Record<number, string> {
        const texts: Record<number, string> = {};
        for (const [line, result] of this.shown.get(uri.toString()) ?? []) {
            texts[line] = result.text;
        }
        return texts;
    }

    hoverAt(uri: vscode.Uri, line: number): string | undefined {
        return this.shown.get(uri.toString())?.get(line)?.hover?.value;
    }

    dispose(): void {
        clearInterval(this.ticker);
        this.subscriptions.forEach((s) => s.dispose());
        Object.values(this.looks).forEach((look) => look.dispose());
    }

    private showRunning(block: RunningBlock): void {
        const seconds = ((Date.now() - block.startedAt) / 1000).toFixed(1);
        const latest = block.latestOutput ? ` · ${block.latestOutput}` : '';
        this.set(block.uri, block.line, { look: 'running', text: clip(`⟳ running… ${seconds} s${latest}`) });
    }

    private tick(): void {
        if (this.running.size === 0) {
            clearInterval(this.ticker);
            this.ticker = undefined;
            return;
        }
        this.running.forEach((block) => this.showRunning(block));
    }

    /**
     * Take away the results shown within a block, fences or cell marker
     * included, before its new one goes after its last line of code: a
     * result left there by an earlier run of the block (on a line that was
     * its last before an edit) is stale.
     */
    private clearBlock(uri: string, place: BlockPlace, moved = 0): void {
        const lines = this.shown.get(uri);
        if (lines === undefined) {
            return;
        }
        const { first, last } = linesOf(place);
        for (const line of [...lines.keys()]) {
            if (first + moved <= line && line <= last + moved) {
                lines.delete(line);
            }
        }
    }

    private set(uri: string, line: number, result: LineResult): void {
        let lines = this.shown.get(uri);
        if (lines === undefined) {
            lines = new Map();
            this.shown.set(uri, lines);
        }
        lines.set(line, result);
        this.render(uri);
    }

    /** Keep results on their lines when lines above are added or removed; drop finished ones whose line was edited. */
    private followEdits(change: vscode.TextDocumentChangeEvent): void {
        const uri = change.document.uri.toString();
        const lines = this.shown.get(uri);
        if (lines === undefined || change.contentChanges.length === 0) {
            return;
        }
        for (const edit of change.contentChanges) {
            const { start, end } = edit.range;
            const delta = edit.text.split('\n').length - 1 - (end.line - start.line);
            // Where a line ends up; undefined when the edit was on it.
            const follow = (line: number) => (line < start.line ? line : line > end.line ? line + delta : undefined);
            const moved = new Map<number, LineResult>();
            for (const [line, result] of lines) {
                const to = follow(line) ?? (result.look === 'running' ? line : undefined);
                if (to !== undefined) {
                    moved.set(to, result);
                }
            }
            lines.clear();
            moved.forEach((result, line) => lines.set(line, result));
            for (const block of this.running.values()) {
                if (block.uri === uri) {
                    block.line = follow(block.line) ?? block.line;
                }
            }
        }
        this.render(uri);
    }

    private renderAll(): void {
        this.shown.forEach((_, uri) => this.render(uri));
    }

    private render(uri: string): void {
        const lines = this.shown.get(uri) ?? new Map<number, LineResult>();
        for (const editor of vscode.window.visibleTextEditors) {
            if (editor.document.uri.toString() !== uri) {
                continue;
            }
            const byLook: Record<Look, vscode.DecorationOptions[]> = { running: [], ok: [], failed: [] };
            for (const [line, result] of lines) {
                if (line >= editor.document.lineCount) {
                    continue;
                }
                const end = editor.document.lineAt(line).range.end;
                byLook[result.look].push({
                    range: new vscode.Range(end, end),
                    hoverMessage: result.hover,
                    renderOptions: { after: { contentText: result.text } },
                });
            }
            for (const look of Object.keys(byLook) as Look[]) {
                editor.setDecorations(this.looks[look], byLook[look]);
            }
        }
    }
}

function key(runId: string, blockIndex: number): string {
    return `${runId}#${blockIndex}`;
}

/** "✓ 42", "✗ exit 1 · Traceback … ZeroDivisionError: division by zero": the mark, why, first and last line. */
export function summary(result: BlockResult): string {
    const why: Partial<Record<BlockStatus, string>> = {
        [Status.ERROR]: `exit ${result.exitCode}`,
        [Status.TIMEOUT]: 'timeout',
        [Status.OOM]: 'out of memory',
        [Status.OUTPUT_LIMIT]: 'file size limit',
        [Status.CANCELLED]: 'cancelled',
    };
    const lines = result.output.split('\n').map((line) => line.trimEnd()).filter((line) => line !== '');
    const output = lines.length === 0 ? '' : lines.length === 1 ? lines[0] : `${lines[0]} … ${lines[lines.length - 1]}`;
    const mark = GLYPHS[result.status] ?? '?';
    const reason = why[result.status];
    const head = reason ? `${mark} ${reason}` : mark;
    return clip(output === '' ? head : `${head}${reason ? ' · ' : ' '}${output}`);
}

function fullOutput(result: BlockResult): vscode.MarkdownString {
    const fence = '`'.repeat(Math.max(3, longestBacktickRun(result.output) + 1));
    const seconds = (result.durationMs / 1000).toFixed(2);
    const head = `**${GLYPHS[result.status] ?? '?'} ${result.status}** · exit ${result.exitCode} · ${seconds} s${result.truncated ? ' · output cut at the limit' : ''}`;
    const body = result.output === '' ? '*(no output)*' : `${fence}text\n${result.output.replace(/\n$/, '')}\n${fence}`;
    return new vscode.MarkdownString(`${head}\n\n${body}`);
}

function longestBacktickRun(text: string): number {
    return Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
}

function lastNonEmptyLine(text: string): string | undefined {
    const lines = text.split('\n').map((line) => line.trimEnd()).filter((line) => line !== '');
    return lines.length > 0 ? lines[lines.length - 1] : undefined;
}

function clip(text: string): string {
    return text.length <= MAX_INLINE_CHARS ? text : `${text.slice(0, MAX_INLINE_CHARS - 1)}…`;
}

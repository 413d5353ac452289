// Owns what a run shows in the editor, block by block: an `after` decoration
// on the last line of each block's code, "⟳ running… 1.2 s" (with its latest
// lines of output) while it runs, then a one-line summary (glyph, why, time,
// the last line of output) with the full output in its hover and in the
// output beside the code (outputView.ts). Places come only from the ranges
// the server sends, carried through the edits made since (tracking.ts): this
// module never looks for blocks itself. A block's rich outputs (a session's
// plots and tables) are kept with it for the view beside that draws them
// (displayView.ts); its summary names them ("▨ 1 image").
import * as vscode from 'vscode';
import { describeDisplays } from './displays';
import { BlockResult, DisplayOutput } from './protocol';
import { Place, codeLines, movePlace, overlaps } from './tracking';
import { BlockStatus, GLYPHS, Status } from './vocabulary';

type Look = 'running' | 'ok' | 'failed';

/** One block's result, or its run going on, where the block is now. */
export interface ShownBlock {
    place: Place;
    look: Look;
    /** The decoration's text. */
    text: string;
    /** Its output so far, or all of it. */
    output: string;
    /** What the output beside the code heads it with, after the block's name: "✗ exit 1 · 0.41 s". */
    outcome: string;
    /** The server's number of the block in its document, when it sends one. */
    blockNumber: number | null;
    /** Its rich outputs (MIME bundles), as they came, or all of them. */
    displays: DisplayOutput[];
    /** The session it ran in; null in script mode (or while it runs). */
    session: string | null;
    hover?: vscode.MarkdownString;
    /** While it runs: its run's key, and when it started. */
    runKey?: string;
    startedAt?: number;
}

const TICK_MS = 100;
const MAX_INLINE_CHARS = 120;
/** While a block runs, the decoration shows this many of its latest lines. */
const RUNNING_LINES = 2;

/** Statuses shown like success: a cancelled block did nothing wrong. */
const NOT_FAILED: readonly BlockStatus[] = [Status.OK, Status.NOT_EXECUTED, Status.CANCELLED];

export class InlineResults implements vscode.Disposable {
    /** Per document URI, its blocks shown, in no order. */
    private readonly shown = new Map<string, ShownBlock[]>();
    private ticker: NodeJS.Timeout | undefined;
    private readonly looks: Record<Look, vscode.TextEditorDecorationType>;
    private readonly subscriptions: vscode.Disposable[] = [];
    private readonly changed = new vscode.EventEmitter<vscode.Uri>();
    /** Fires with a document whose shown blocks changed (not for the clock's ticks). */
    readonly onDidChange = this.changed.event;

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
            this.changed,
            vscode.window.onDidChangeVisibleTextEditors(() => this.renderAll()),
            vscode.workspace.onDidChangeTextDocument((change) => this.followEdits(change)),
            vscode.workspace.onDidCloseTextDocument((document) => this.clear(document.uri)),
        );
    }

    /** A block starts, at `place` as it is now: whatever was shown for it, or for a block it overlaps, goes. */
    blockStarted(uri: vscode.Uri, runKey: string, place: Place, blockNumber: number | null): void {
        this.replace(uri, place, {
            place,
            look: 'running',
            text: '',
            output: '',
            outcome: '⟳ running…',
            blockNumber,
            displays: [],
            session: null,
            runKey,
            startedAt: Date.now(),
        });
        this.ticker ??= setInterval(() => this.tick(), TICK_MS);
    }

    output(runKey: string, text: string): void {
        for (const [uri, blocks] of this.shown) {
            const block = blocks.find((b) => b.runKey === runKey);
            if (block !== undefined) {
                block.output += text;
                block.text = runningText(block);
                this.render(uri);
                this.changed.fire(vscode.Uri.parse(uri));
                return;
            }
        }
    }

    /** A rich output of the block running as `runKey`, as it came. */
    displayed(runKey: string, display: DisplayOutput): void {
        for (const [uri, blocks] of this.shown) {
            const block = blocks.find((b) => b.runKey === runKey);
            if (block !== undefined) {
                block.displays.push(display);
                this.changed.fire(vscode.Uri.parse(uri));
                return;
            }
        }
    }

    /** The block running as `runKey`, where it is now. */
    placeOf(runKey: string): Place | undefined {
        for (const blocks of this.shown.values()) {
            const block = blocks.find((b) => b.runKey === runKey);
            if (block !== undefined) {
                return block.place;
            }
        }
        return undefined;
    }

    /** A block's result, at the place its run was shown (or `place` when none was). */
    blockFinished(uri: vscode.Uri, runKey: string, fallback: Place | undefined, result: BlockResult, blockNumber: number | null): void {
        const place = this.placeOf(runKey) ?? fallback;
        this.drop((b) => b.runKey === runKey);
        if (place === undefined) {
            return;
        }
        this.replace(uri, place, {
            place,
            look: NOT_FAILED.includes(result.status) ? 'ok' : 'failed',
            text: summary(result),
            output: result.output,
            outcome: outcome(result),
            blockNumber,
            displays: result.displays ?? [],
            session: result.session ?? null,
            hover: fullOutput(result),
        });
    }

    /** A run is over: a block still shown as running got no result (the request failed), so take it away. */
    runEnded(runId: string): void {
        this.drop((b) => b.runKey?.startsWith(`${runId}#`) === true);
    }

    /** Take away every result shown in a document. */
    clear(uri: vscode.Uri): void {
        if (this.shown.delete(uri.toString())) {
            this.render(uri.toString());
            this.changed.fire(uri);
        }
    }

    /** The blocks shown in a document, in the document's order. */
    blocksOf(uri: vscode.Uri): ShownBlock[] {
        return [...(this.shown.get(uri.toString()) ?? [])].sort((a, b) => a.place.extent.start.compareTo(b.place.extent.start));
    }

    /** What a user sees: the decoration text at each line of a document. */
    textsOf(uri: vscode.Uri): Record<number, string> {
        const texts: Record<number, string> = {};
        for (const block of this.shown.get(uri.toString()) ?? []) {
            texts[codeLines(block.place).last] = block.text;
        }
        return texts;
    }

    hoverAt(uri: vscode.Uri, line: number): string | undefined {
        return (this.shown.get(uri.toString()) ?? []).find((b) => codeLines(b.place).last === line)?.hover?.value;
    }

    dispose(): void {
        clearInterval(this.ticker);
        this.subscriptions.forEach((s) => s.dispose());
        Object.values(this.looks).forEach((look) => look.dispose());
    }

    private replace(uri: vscode.Uri, place: Place, block: ShownBlock): void {
        const key = uri.toString();
        const kept = (this.shown.get(key) ?? []).filter((b) => !overlaps(b.place, place));
        if (block.look === 'running') {
            block.text = runningText(block);
        }
        kept.push(block);
        this.shown.set(key, kept);
        this.render(key);
        this.changed.fire(uri);
    }

    private drop(which: (block: ShownBlock) => boolean): void {
        for (const [uri, blocks] of this.shown) {
            const kept = blocks.filter((b) => !which(b));
            if (kept.length !== blocks.length) {
                this.shown.set(uri, kept);
                this.render(uri);
                this.changed.fire(vscode.Uri.parse(uri));
            }
        }
    }

    private tick(): void {
        let running = 0;
        for (const [uri, blocks] of this.shown) {
            const ticking = blocks.filter((b) => b.look === 'running');
            ticking.forEach((b) => (b.text = runningText(b)));
            running += ticking.length;
            if (ticking.length > 0) {
                this.render(uri);
            }
        }
        if (running === 0) {
            clearInterval(this.ticker);
            this.ticker = undefined;
        }
    }

    /** Carry every block shown through the change; a block whose lines were all deleted goes. */
    private followEdits(change: vscode.TextDocumentChangeEvent): void {
        const uri = change.document.uri.toString();
        const blocks = this.shown.get(uri);
        if (blocks === undefined || change.contentChanges.length === 0) {
            return;
        }
        const kept: ShownBlock[] = [];
        for (const block of blocks) {
            let place: Place | undefined = block.place;
            for (const edit of change.contentChanges) {
                place = place && movePlace(place, edit);
            }
            if (place !== undefined) {
                block.place = place;
                kept.push(block);
            }
        }
        this.shown.set(uri, kept);
        this.render(uri);
        this.changed.fire(change.document.uri);
    }

    private renderAll(): void {
        this.shown.forEach((_, uri) => this.render(uri));
    }

    private render(uri: string): void {
        const blocks = this.shown.get(uri) ?? [];
        for (const editor of vscode.window.visibleTextEditors) {
            if (editor.document.uri.toString() !== uri) {
                continue;
            }
            const byLook: Record<Look, vscode.DecorationOptions[]> = { running: [], ok: [], failed: [] };
            for (const block of blocks) {
                const line = codeLines(block.place).last;
                if (line >= editor.document.lineCount) {
                    continue;
                }
                const end = editor.document.lineAt(line).range.end;
                byLook[block.look].push({
                    range: new vscode.Range(end, end),
                    hoverMessage: block.hover,
                    renderOptions: { after: { contentText: block.text } },
                });
            }
            for (const look of Object.keys(byLook) as Look[]) {
                editor.setDecorations(this.looks[look], byLook[look]);
            }
        }
    }
}

/** "⟳ running… 1.2 s · first ⏎ second": the clock and the latest lines of output. */
function runningText(block: ShownBlock): string {
    const seconds = ((Date.now() - (block.startedAt ?? Date.now())) / 1000).toFixed(1);
    const latest = nonEmptyLines(block.output).slice(-RUNNING_LINES).join(' ⏎ ');
    return clip(`⟳ running… ${seconds} s${latest ? ` · ${latest}` : ''}`);
}

const WHY: Partial<Record<BlockStatus, (result: BlockResult) => string>> = {
    [Status.ERROR]: (result) => `exit ${result.exitCode}`,
    [Status.TIMEOUT]: () => 'timeout',
    [Status.OOM]: () => 'out of memory',
    [Status.OUTPUT_LIMIT]: () => 'file size limit',
    [Status.CANCELLED]: () => 'cancelled',
};

/** "✓ 0.21 s", "✗ exit 1 · 0.40 s", "⏱ timeout · 30.00 s · state lost": the mark, why, how long, and whether its session's state went. */
function outcome(result: BlockResult): string {
    const mark = GLYPHS[result.status] ?? '?';
    const why = WHY[result.status]?.(result);
    const seconds = `${(result.durationMs / 1000).toFixed(2)} s`;
    const lost = result.stateLost ? ' · state lost' : '';
    return `${why ? `${mark} ${why} · ${seconds}` : `${mark} ${seconds}`}${lost}`;
}

/**
 * "✓ 0.21 s · 42", "✗ exit 1 · 0.40 s · ZeroDivisionError: division by zero":
 * the outcome and the output's last line, which is where an error says what
 * it was (a traceback's first line says nothing); "(+N lines)" when there is
 * more beside the code. Rich outputs, drawn beside, are named after the
 * outcome: "✓ 0.61 s · ▨ 1 image · <Figure size 640x480 with 1 Axes>".
 */
export function summary(result: BlockResult): string {
    const lines = nonEmptyLines(result.output);
    const last = lines.length === 0 ? '' : ` · ${lines[lines.length - 1]}`;
    const more = lines.length > 1 ? ` (+${lines.length - 1} lines)` : '';
    const rich = describeDisplays(result.displays ?? []);
    const text = `${outcome(result)}${rich ? ` · ${rich}` : ''}${last}`;
    return text.length + more.length <= MAX_INLINE_CHARS ? `${text}${more}` : clip(text);
}

function fullOutput(result: BlockResult): vscode.MarkdownString {
    const fence = '`'.repeat(Math.max(3, longestBacktickRun(result.output) + 1));
    const head = `**${GLYPHS[result.status] ?? '?'} ${result.status}** · exit ${result.exitCode} · ${(result.durationMs / 1000).toFixed(2)} s${result.truncated ? ' · output cut at the limit' : ''}`;
    const body = result.output === '' ? '*(no output)*' : `${fence}text\n${result.output.replace(/\n$/, '')}\n${fence}`;
    const rich = describeDisplays(result.displays ?? []);
    const drawn = rich ? `\n\n${rich}: drawn beside, in **cellbox displays**` : '';
    return new vscode.MarkdownString(`${head}\n\n${body}${drawn}`);
}

function longestBacktickRun(text: string): number {
    return Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
}

function nonEmptyLines(text: string): string[] {
    return text.split('\n').map((line) => line.trimEnd()).filter((line) => line !== '');
}

function clip(text: string): string {
    return text.length <= MAX_INLINE_CHARS ? text : `${text.slice(0, MAX_INLINE_CHARS - 1)}…`;
}

// Owns the output beside the code: a read-only document per source document,
// opened in the editor group beside it when a block starts (as the Jupyter
// Interactive Window opens beside a .py file), with each block's whole output
// under a heading that names the block, its lines and how it ended, in the
// document's order, growing while a block runs. VS Code has no API for lines
// inserted into the editor itself (insets are proposed API only), and a hover
// shows one block at a time and goes when the mouse moves.
import * as path from 'path';
import * as vscode from 'vscode';
import { describeDisplays, richDisplays } from './displays';
import { InlineResults, ShownBlock } from './inlineResults';
import { linesText } from './tracking';

export const OUTPUT_SCHEME = 'cellbox-output';
const UPDATE_MS = 100;

export class OutputView implements vscode.TextDocumentContentProvider, vscode.Disposable {
    private readonly changed = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.changed.event;
    private readonly pending = new Map<string, NodeJS.Timeout>();
    /** Per output document, the line to show once its new text is in. */
    private readonly reveal = new Map<string, number>();
    private readonly subscriptions: vscode.Disposable[] = [];

    constructor(private readonly results: InlineResults) {
        this.subscriptions.push(
            this.changed,
            vscode.workspace.registerTextDocumentContentProvider(OUTPUT_SCHEME, this),
            results.onDidChange((source) => this.update(source)),
            vscode.workspace.onDidChangeTextDocument((change) => this.revealPending(change.document.uri)),
            vscode.window.onDidChangeActiveTextEditor((editor) => this.follow(editor)),
        );
    }

    /** The output beside shows another file's: show this file's instead, when it has results. */
    private follow(editor: vscode.TextEditor | undefined): void {
        if (editor === undefined || editor.document.uri.scheme === OUTPUT_SCHEME || this.results.blocksOf(editor.document.uri).length === 0) {
            return;
        }
        const mine = this.uriOf(editor.document.uri).toString();
        const other = vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme === OUTPUT_SCHEME && e.document.uri.toString() !== mine);
        if (other !== undefined && !vscode.window.visibleTextEditors.some((e) => e.document.uri.toString() === mine)) {
            void vscode.workspace.openTextDocument(this.uriOf(editor.document.uri)).then((document) =>
                vscode.window.showTextDocument(document, { viewColumn: other.viewColumn, preserveFocus: true, preview: true }),
            );
        }
    }

    /** The output document of a source document. */
    uriOf(source: vscode.Uri): vscode.Uri {
        return vscode.Uri.from({ scheme: OUTPUT_SCHEME, path: `/${path.basename(source.fsPath)} · cellbox output`, query: source.toString() });
    }

    /** Open the output of `source` beside it, unless it is already in sight; then bring `line` of the source's blocks into view. */
    async show(source: vscode.Uri, force = false): Promise<void> {
        const uri = this.uriOf(source);
        if (!force && !vscode.workspace.getConfiguration('cellbox', source).get<boolean>('outputBeside', true)) {
            return;
        }
        if (vscode.window.visibleTextEditors.some((e) => e.document.uri.toString() === uri.toString())) {
            return;
        }
        const document = await vscode.workspace.openTextDocument(uri);
        await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true, preview: true });
    }

    /** Bring a block's heading into view in the output beside its code, once its text is there. */
    revealBlock(source: vscode.Uri, block: ShownBlock): void {
        const blocks = this.results.blocksOf(source);
        const index = blocks.indexOf(block);
        if (index >= 0) {
            this.reveal.set(this.uriOf(source).toString(), render(source, blocks).headings[index]);
        }
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        const source = vscode.Uri.parse(uri.query);
        return render(source, this.results.blocksOf(source)).text;
    }

    dispose(): void {
        this.pending.forEach((timer) => clearTimeout(timer));
        this.subscriptions.forEach((s) => s.dispose());
    }

    private update(source: vscode.Uri): void {
        const uri = this.uriOf(source);
        const key = uri.toString();
        if (this.pending.has(key)) {
            return;
        }
        // Output can come in many small pieces: redraw at most every UPDATE_MS.
        this.pending.set(key, setTimeout(() => {
            this.pending.delete(key);
            this.changed.fire(uri);
        }, UPDATE_MS));
    }

    private revealPending(uri: vscode.Uri): void {
        const line = this.reveal.get(uri.toString());
        if (uri.scheme !== OUTPUT_SCHEME || line === undefined) {
            return;
        }
        this.reveal.delete(uri.toString());
        for (const editor of vscode.window.visibleTextEditors) {
            if (editor.document.uri.toString() === uri.toString()) {
                editor.revealRange(new vscode.Range(line, 0, line, 0), vscode.TextEditorRevealType.AtTop);
            }
        }
    }
}

/** The output document's text, and the line of each block's heading. */
function render(source: vscode.Uri, blocks: ShownBlock[]): { text: string; headings: number[] } {
    // The server says which blocks ran in a session (session mode): say what state they share.
    const mode = blocks.some((block) => block.session !== null)
        ? 'Python blocks share the session of this file, which keeps their state; other blocks run in a fresh process'
        : 'each block runs in a fresh process';
    const lines = [`cellbox output of ${vscode.workspace.asRelativePath(source)} (${mode})`];
    const headings: number[] = [];
    if (blocks.length === 0) {
        lines.push('', 'No results: run a block (Shift+Enter, or its ▶ Run lens).');
    }
    for (const block of blocks) {
        const name = block.blockNumber !== null ? `block ${block.blockNumber} · ` : '';
        lines.push('');
        headings.push(lines.length);
        lines.push(`── ${name}${linesText(block.place)} · ${block.outcome}`);
        const output = block.output.replace(/\n$/, '');
        lines.push(...(output === '' ? [block.look === 'running' ? '' : '(no output)'] : output.split('\n')));
        const rich = describeDisplays(richDisplays(block.displays));
        if (rich) {
            lines.push(`[${rich}: drawn in ${path.basename(source.fsPath)} · cellbox displays]`);
        }
    }
    return { text: `${lines.join('\n')}\n`, headings };
}

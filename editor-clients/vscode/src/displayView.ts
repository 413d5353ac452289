// Owns the rich outputs beside the code: a webview per source document
// ("notes.md · cellbox displays"), opened in the editor group beside it when a
// block shows its first plot or table (as the Jupyter Interactive Window
// does), with each such block under the same heading as in the text output
// beside (outputView.ts), in the document's order, growing as the server's
// cellbox/display notifications come in. Images are drawn from their data
// (PNG, JPEG, SVG as <img>), HTML as it came, Markdown and JSON as text. The
// webview runs no script and loads nothing: its content security policy
// allows only inline styles and data: images, so what a block's HTML asks
// for (scripts, remote images, frames, forms) does not happen, and its
// <meta> tags are shown as text (a refresh would navigate away).
import * as path from 'path';
import * as vscode from 'vscode';
import { bestType, describeDisplays, richDisplays } from './displays';
import { InlineResults, ShownBlock } from './inlineResults';
import { DisplayOutput } from './protocol';
import { linesText } from './tracking';

const VIEW_TYPE = 'cellbox.displays';
const UPDATE_MS = 150;
const BASE64 = /^[A-Za-z0-9+/=\s]*$/;

export class DisplayView implements vscode.Disposable {
    /** Per source document URI, its panel and the page last set in it. */
    private readonly panels = new Map<string, { panel: vscode.WebviewPanel; html: string }>();
    private readonly pending = new Map<string, NodeJS.Timeout>();
    private readonly subscriptions: vscode.Disposable[] = [];

    constructor(private readonly results: InlineResults) {
        this.subscriptions.push(results.onDidChange((source) => this.update(source)));
    }

    /** The panel's title for a source document. */
    titleOf(source: vscode.Uri): string {
        return `${path.basename(source.fsPath)} · cellbox displays`;
    }

    /**
     * Open the rich outputs of `source` beside it, unless they are in sight
     * already; unasked (`force` false) only when cellbox.outputBeside is on
     * and the document has some.
     */
    show(source: vscode.Uri, force = false): void {
        const key = source.toString();
        const open = this.panels.get(key);
        if (!force && (!vscode.workspace.getConfiguration('cellbox', source).get<boolean>('outputBeside', true) || !this.hasRich(source))) {
            return;
        }
        if (open !== undefined) {
            if (!open.panel.visible) {
                open.panel.reveal(open.panel.viewColumn ?? vscode.ViewColumn.Beside, true);
            }
            return;
        }
        const panel = vscode.window.createWebviewPanel(
            VIEW_TYPE,
            this.titleOf(source),
            { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
            { enableScripts: false, enableForms: false, enableCommandUris: false, localResourceRoots: [] },
        );
        const entry = { panel, html: '' };
        this.panels.set(key, entry);
        panel.onDidDispose(() => {
            if (this.panels.get(key) === entry) {
                this.panels.delete(key);
            }
        });
        this.render(source);
    }

    /** The page shown for a source document, and whether it is in sight; undefined when it has no panel. */
    shown(source: vscode.Uri): { html: string; visible: boolean } | undefined {
        const open = this.panels.get(source.toString());
        return open && { html: open.html, visible: open.panel.visible };
    }

    dispose(): void {
        this.pending.forEach((timer) => clearTimeout(timer));
        this.panels.forEach(({ panel }) => panel.dispose());
        this.subscriptions.forEach((s) => s.dispose());
    }

    private hasRich(source: vscode.Uri): boolean {
        return this.results.blocksOf(source).some((block) => richDisplays(block.displays).length > 0);
    }

    private update(source: vscode.Uri): void {
        const key = source.toString();
        if (!this.panels.has(key) || this.pending.has(key)) {
            return;
        }
        // A block's text output comes in many small pieces, each a change: redraw at most every UPDATE_MS.
        this.pending.set(key, setTimeout(() => {
            this.pending.delete(key);
            this.render(source);
        }, UPDATE_MS));
    }

    private render(source: vscode.Uri): void {
        const open = this.panels.get(source.toString());
        if (open === undefined) {
            return;
        }
        const html = page(source, this.results.blocksOf(source));
        // Setting the page reloads it (and its scroll): only when what it shows changed.
        if (html !== open.html) {
            open.html = html;
            open.panel.webview.html = html;
        }
    }
}

/** The whole page: each block with rich outputs under its heading. */
function page(source: vscode.Uri, blocks: ShownBlock[]): string {
    const sections = blocks
        .map((block) => ({ block, rich: richDisplays(block.displays) }))
        .filter(({ rich }) => rich.length > 0)
        .map(({ block, rich }) => {
            const name = block.blockNumber !== null ? `block ${block.blockNumber} · ` : '';
            const heading = `${name}${linesText(block.place)} · ${block.outcome} · ${describeDisplays(rich)}`;
            return `<section class="block"><h2>${escape(heading)}</h2>\n${rich.map(drawn).join('\n')}</section>`;
        });
    const body = sections.length > 0
        ? sections.join('\n')
        : '<p class="none">No plots or tables: a block that shows one (in session mode) draws it here.</p>';
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<title>${escape(vscode.workspace.asRelativePath(source))} · cellbox displays</title>
<style>
body { color: var(--vscode-editor-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 0 12px 24px; }
h1 { font-size: 1.1em; font-weight: normal; opacity: 0.8; }
h2 { font-size: 1em; font-family: var(--vscode-editor-font-family); font-weight: normal; border-bottom: 1px solid var(--vscode-panel-border, #8884); padding-bottom: 2px; margin: 20px 0 8px; }
.display { margin: 8px 0 14px; overflow-x: auto; }
.display img { max-width: 100%; height: auto; background: #fff; }
.display pre { font-family: var(--vscode-editor-font-family); white-space: pre-wrap; margin: 0; }
.display table { border-collapse: collapse; font-family: var(--vscode-editor-font-family); }
.display th, .display td { border: 1px solid var(--vscode-panel-border, #8886); padding: 2px 8px; text-align: right; }
.display thead th { background: var(--vscode-editorWidget-background, #8882); }
</style>
</head>
<body class="cellbox-displays">
<h1>cellbox displays of ${escape(vscode.workspace.asRelativePath(source))}</h1>
${body}
</body>
</html>
`;
}

/** One display, drawn by its richest type. */
function drawn(display: DisplayOutput): string {
    const mime = bestType(display);
    const value = mime === undefined ? undefined : display.data[mime];
    let inner: string;
    switch (mime) {
        case 'image/png':
        case 'image/jpeg':
            inner = typeof value === 'string' && BASE64.test(value)
                ? `<img alt="${mime}" src="data:${mime};base64,${value.replace(/\s/g, '')}">`
                : '<pre>(an image that is not base64)</pre>';
            break;
        case 'image/svg+xml':
            // As an image: an SVG drawn by <img> runs none of its scripts.
            inner = `<img alt="image/svg+xml" src="data:image/svg+xml;base64,${Buffer.from(String(value)).toString('base64')}">`;
            break;
        case 'text/html':
            // As it came, but for <meta> (a refresh would navigate the page away; the CSP stops the rest).
            inner = String(value).replace(/<meta\b/gi, '&lt;meta');
            break;
        case 'application/json':
            inner = `<pre>${escape(JSON.stringify(value, null, 2))}</pre>`;
            break;
        default:
            inner = `<pre>${escape(String(value))}</pre>`;
    }
    return `<div class="display" data-mime="${mime ?? ''}">${inner}</div>`;
}

function escape(text: string): string {
    return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

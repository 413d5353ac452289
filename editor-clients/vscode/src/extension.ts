// cellbox for VS Code: wires the language clients (one `cellbox serve` per
// workspace folder), the runs, their inline display, the output channel and
// the status bar together. The server finds blocks, maps errors and makes the
// lenses; this extension only shows what it sends.
import * as vscode from 'vscode';
import { Clients } from './clients';
import { RUN_FROM_LENS, registerCommands } from './commands';
import { DisplayView } from './displayView';
import { InlineResults } from './inlineResults';
import { OUTPUT_SCHEME, OutputView } from './outputView';
import { RunLog } from './runLog';
import { Runs } from './runs';
import { SandboxStatus } from './sandboxStatus';

/** What the extension shows, read back by its tests (a user sees the same). */
export interface CellboxApi {
    decorations(uri: vscode.Uri): Record<number, string>;
    hover(uri: vscode.Uri, line: number): string | undefined;
    statusBarText(): string;
    outputText(): string;
    /** The output shown beside a document's code: its text, or undefined when it is not in sight. */
    besideText(uri: vscode.Uri): string | undefined;
    /** The page of a document's rich outputs beside its code, and whether it is in sight; undefined when it has none open. */
    displays(uri: vscode.Uri): { html: string; visible: boolean } | undefined;
    /** The session a document's blocks run in (session mode). */
    sessionOf(uri: vscode.Uri): string;
}

let clients: Clients | undefined;

export function activate(context: vscode.ExtensionContext): CellboxApi {
    const serverLog = vscode.window.createOutputChannel('cellbox server');
    const log = new RunLog();
    const display = new InlineResults();
    const beside = new OutputView(display);
    const displays = new DisplayView(display);
    let runs: Runs | undefined;
    let status: SandboxStatus | undefined;
    clients = new Clients(
        serverLog,
        {
            output: (params) => runs?.output(params),
            blockStarted: (params) => runs?.blockStarted(params),
            display: (params) => runs?.displayed(params),
            progress: (folder, token, value) => status?.progress(folder, token, value),
        },
        RUN_FROM_LENS,
    );
    status = new SandboxStatus(clients, (uri) => runs!.sessionOf(uri));
    runs = new Runs(clients, display, beside, log, status, displays);
    context.subscriptions.push(
        serverLog, log, display, beside, displays, clients, status, runs,
        ...registerCommands(clients, runs, log, status, display, beside, displays),
    );
    void status.refresh();
    return {
        decorations: (uri) => display.textsOf(uri),
        hover: (uri, line) => display.hoverAt(uri, line),
        statusBarText: () => status!.text(),
        outputText: () => log.text(),
        besideText: (uri) =>
            vscode.window.visibleTextEditors
                .find((e) => e.document.uri.scheme === OUTPUT_SCHEME && e.document.uri.toString() === beside.uriOf(uri).toString())
                ?.document.getText(),
        displays: (uri) => displays.shown(uri),
        sessionOf: (uri) => runs!.sessionOf(uri),
    };
}

/** Stop the servers, which stop the sandboxes they started. */
export async function deactivate(): Promise<void> {
    await clients?.stopAll();
}

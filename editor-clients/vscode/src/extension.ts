// cellbox for VS Code: wires the language clients (one `cellbox serve` per
// workspace folder), the runs, their inline display, the output channel and
// the status bar together. The server finds blocks, maps errors and makes the
// lenses; this extension only shows what it sends.
import * as vscode from 'vscode';
import { Clients } from './clients';
import { RUN_FROM_LENS, registerCommands } from './commands';
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
}

let clients: Clients | undefined;

export function activate(context: vscode.ExtensionContext): CellboxApi {
    const serverLog = vscode.window.createOutputChannel('cellbox server');
    const log = new RunLog();
    const display = new InlineResults();
    const beside = new OutputView(display);
    let runs: Runs | undefined;
    clients = new Clients(
        serverLog,
        { output: (params) => runs?.output(params), blockStarted: (params) => runs?.blockStarted(params) },
        RUN_FROM_LENS,
    );
    const status = new SandboxStatus(clients);
    runs = new Runs(clients, display, beside, log, status);
    context.subscriptions.push(
        serverLog, log, display, beside, clients, status, runs,
        ...registerCommands(clients, runs, log, status, display, beside),
    );
    void status.refresh();
    return {
        decorations: (uri) => display.textsOf(uri),
        hover: (uri, line) => display.hoverAt(uri, line),
        statusBarText: () => status.text(),
        outputText: () => log.text(),
        besideText: (uri) =>
            vscode.window.visibleTextEditors
                .find((e) => e.document.uri.scheme === OUTPUT_SCHEME && e.document.uri.toString() === beside.uriOf(uri).toString())
                ?.document.getText(),
    };
}

/** Stop the servers, which stop the sandboxes they started. */
export async function deactivate(): Promise<void> {
    await clients?.stopAll();
}

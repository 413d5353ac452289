// Owns one question for the keys: is the cursor in a block, and which block
// comes next. The blocks are the server's "▶ Run" lenses (it finds them, and
// puts each lens on the block's first line with the block's first line of
// code as its argument). A lens says where a block begins, not where it ends:
// a Markdown block ends at the fence that closes the lens's opening fence, a
// `# %%` cell where the next one begins. That is all this module reads of the
// text; it decides nothing about what runs.
import * as vscode from 'vscode';
import { ExecuteArgument } from './protocol';

export interface BlockHere {
    /** The block's first line (its opening fence or cell marker). */
    header: number;
    /** Its first line of code, which the server's lens runs. */
    code: number;
    /** Its last line (the closing fence, or the cell's last line). */
    last: number;
}

const RUN_TITLE = '▶ Run';
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/** The blocks the server's lenses name, in the document's order. */
export function blocksOf(document: vscode.TextDocument, lenses: readonly vscode.CodeLens[]): BlockHere[] {
    const starts = lenses
        .filter((lens) => lens.command?.title === RUN_TITLE)
        .map((lens) => ({ header: lens.range.start.line, code: (lens.command?.arguments?.[0] as ExecuteArgument | undefined)?.position?.line }))
        .filter((start): start is { header: number; code: number } => start.code !== undefined)
        .sort((a, b) => a.header - b.header);
    return starts.map((start, index) => {
        const next = index + 1 < starts.length ? starts[index + 1].header : document.lineCount;
        return { ...start, last: lastLine(document, start.header, next) };
    });
}

/** The block the cursor's line is in, if any. */
export function blockAt(blocks: BlockHere[], line: number): BlockHere | undefined {
    return blocks.find((block) => block.header <= line && line <= block.last);
}

function lastLine(document: vscode.TextDocument, header: number, next: number): number {
    const opening = FENCE.exec(document.lineAt(header).text);
    if (opening === null) {
        // A cell: up to the next cell's marker.
        return next - 1;
    }
    const fence = opening[1];
    for (let line = header + 1; line < next; line++) {
        const text = document.lineAt(line).text.trim();
        if (text.startsWith(fence[0].repeat(fence.length)) && /^([`~])\1*$/.test(text)) {
            return line;
        }
    }
    return next - 1;
}

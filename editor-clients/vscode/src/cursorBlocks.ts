// Owns one question for the keys: is the cursor in a block, and which block
// comes next. The blocks are the server's "▶ Run" lenses: each spans its
// block (fence lines or cell marker included, the end exclusive) and carries
// the block's first line of code as its argument. This module reads no text
// of the document: the server finds the blocks.
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

/** The blocks the server's lenses name, in the document's order. */
export function blocksOf(lenses: readonly vscode.CodeLens[]): BlockHere[] {
    return lenses
        .filter((lens) => lens.command?.title === RUN_TITLE)
        .map((lens) => ({
            header: lens.range.start.line,
            code: (lens.command?.arguments?.[0] as ExecuteArgument | undefined)?.position?.line,
            last: lastLineOf(lens.range),
        }))
        .filter((block): block is BlockHere => block.code !== undefined)
        .sort((a, b) => a.header - b.header);
}

/** The block the cursor's line is in, if any. */
export function blockAt(blocks: BlockHere[], line: number): BlockHere | undefined {
    return blocks.find((block) => block.header <= line && line <= block.last);
}

/** A range's last line: its end is exclusive at the start of a line (the server's rule, vocabulary.py). */
function lastLineOf(range: vscode.Range): number {
    const endsAtLineStart = range.end.character === 0 && range.end.line > range.start.line;
    return endsAtLineStart ? range.end.line - 1 : range.end.line;
}

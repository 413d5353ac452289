// Owns one question: where a place the server named is now, after the edits
// made since. The server's ranges are the document's as it read it when the
// run was asked for; lines typed above a running block move the block, so
// each range is carried through every change since that version, as VS Code
// carries its own decorations. A block wholly deleted has no place any more.
import * as vscode from 'vscode';
import { Range } from './protocol';

/** Which way a position goes when text is inserted exactly at it. */
type Stick = 'before' | 'after';

/** A block's place: its code and all of it (fences or cell marker included), end exclusive. */
export interface Place {
    range: vscode.Range;
    extent: vscode.Range;
}

/** The first and last line of a block's code, for people and for the decoration. */
export function codeLines(place: Place): { first: number; last: number } {
    const { start, end } = place.range;
    const last = end.character === 0 && end.line > start.line ? end.line - 1 : end.line;
    return { first: start.line, last };
}

/** "line 4", "lines 10-12": a block's code, for people. */
export function linesText(place: Place): string {
    const { first, last } = codeLines(place);
    return first === last ? `line ${first + 1}` : `lines ${first + 1}-${last + 1}`;
}

export function toPlace(range: Range, extent: Range | null): Place {
    const whole = extent ?? range;
    return { range: toRange(range), extent: toRange(whole) };
}

/**
 * A place carried through one document change; undefined when the block's
 * whole extent was deleted. Text inserted at the very start of the extent is
 * above the block (the block moves down); at the end of its code, inside it
 * (a line typed before a closing fence belongs to the block); at the end of
 * its extent, below it.
 */
export function movePlace(place: Place, change: vscode.TextDocumentContentChangeEvent): Place | undefined {
    const { start, end } = change.range;
    if (!start.isAfter(place.extent.start) && !end.isBefore(place.extent.end) && !place.extent.isEmpty) {
        return undefined;
    }
    const extentStart = movePosition(place.extent.start, change, 'after');
    const extentEnd = movePosition(place.extent.end, change, 'before');
    const codeStart = movePosition(place.range.start, change, 'before');
    const codeEnd = movePosition(place.range.end, change, 'after');
    return {
        range: new vscode.Range(codeStart, codeEnd.isBefore(codeStart) ? codeStart : codeEnd),
        extent: new vscode.Range(extentStart, extentEnd.isBefore(extentStart) ? extentStart : extentEnd),
    };
}

export function overlaps(a: Place, b: Place): boolean {
    const first = (p: Place) => p.extent.start.line;
    const last = (p: Place) => Math.max(p.extent.start.line, p.extent.end.character === 0 ? p.extent.end.line - 1 : p.extent.end.line);
    return first(a) <= last(b) && first(b) <= last(a);
}

function movePosition(position: vscode.Position, change: vscode.TextDocumentContentChangeEvent, stick: Stick): vscode.Position {
    const { start, end } = change.range;
    if (position.isBefore(start) || (position.isEqual(start) && stick === 'before' && start.isEqual(end))) {
        return position;
    }
    const inserted = change.text.split('\n');
    const lastInsertedLine = start.line + inserted.length - 1;
    const lastInsertedEnd = (inserted.length === 1 ? start.character : 0) + inserted[inserted.length - 1].length;
    if (position.isBefore(end)) {
        // Inside the replaced text: to where the replacement ends, or begins.
        return stick === 'after' ? new vscode.Position(lastInsertedLine, lastInsertedEnd) : start;
    }
    if (position.line === end.line) {
        return new vscode.Position(lastInsertedLine, lastInsertedEnd + position.character - end.character);
    }
    return new vscode.Position(position.line + lastInsertedLine - end.line, position.character);
}

function toRange(range: Range): vscode.Range {
    return new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

/**
 * The changes of each open document since a version, kept while a run of it
 * may still send places read at that version.
 */
export class ChangeHistory implements vscode.Disposable {
    private readonly changes = new Map<string, { version: number; changes: readonly vscode.TextDocumentContentChangeEvent[] }[]>();
    /** Per document, the versions runs were asked at and are not over yet. */
    private readonly pinned = new Map<string, number[]>();
    private readonly subscription: vscode.Disposable;

    constructor() {
        this.subscription = vscode.workspace.onDidChangeTextDocument((change) => {
            const uri = change.document.uri.toString();
            if (this.pinned.has(uri) && change.contentChanges.length > 0) {
                const list = this.changes.get(uri) ?? [];
                list.push({ version: change.document.version, changes: change.contentChanges });
                this.changes.set(uri, list);
            }
        });
    }

    /** Keep the changes of `uri` from its version now until the returned function is called. */
    pin(uri: vscode.Uri, version: number): () => void {
        const key = uri.toString();
        const versions = this.pinned.get(key) ?? [];
        versions.push(version);
        this.pinned.set(key, versions);
        return () => {
            const left = [...(this.pinned.get(key) ?? [])];
            left.splice(left.indexOf(version), 1);
            if (left.length === 0) {
                this.pinned.delete(key);
                this.changes.delete(key);
            } else {
                this.pinned.set(key, left);
                const oldest = Math.min(...left);
                this.changes.set(key, (this.changes.get(key) ?? []).filter((c) => c.version > oldest));
            }
        };
    }

    /** Where a place read at `version` of `uri` is now; undefined when it was deleted since. */
    since(uri: vscode.Uri, version: number, place: Place): Place | undefined {
        let moved: Place | undefined = place;
        for (const entry of this.changes.get(uri.toString()) ?? []) {
            if (entry.version <= version) {
                continue;
            }
            for (const change of entry.changes) {
                moved = moved && movePlace(moved, change);
            }
        }
        return moved;
    }

    dispose(): void {
        this.subscription.dispose();
    }
}

// The shapes of what cellbox's server sends and takes (its README's "Protocol"
// section), as far as this client reads them. Field names are the server's;
// the names of commands, notifications and statuses are in vocabulary.ts.
import { BlockStatus } from './vocabulary';

export interface Position {
    line: number;
    character: number;
}

export interface Range {
    start: Position;
    /** Exclusive: a block ending with line 8 has end {line: 9, character: 0}. */
    end: Position;
}

/** A document-aware execute: `uri` and exactly one of position, range, all. */
export interface ExecuteArgument {
    uri: string;
    position?: Position;
    range?: Range;
    all?: boolean;
    runId?: string;
}

export interface BlockResult {
    language: string;
    exitCode: number;
    output: string;
    durationMs: number;
    status: BlockStatus;
    truncated: boolean;
    /** Where the block's code is in the document; null for blocks given as text. */
    range: Range | null;
    /** The whole block, its fence lines or cell marker included; null for blocks given as text. */
    extent: Range | null;
    /** The block's number among its document's runnable blocks, from 1; absent from older servers. */
    blockNumber?: number | null;
    /** Rich outputs the block showed (plots, tables), in order; absent from older servers. */
    displays?: DisplayOutput[];
    /** The session the block ran in (a document's is named by its path); null in script mode. */
    session?: string | null;
    /** Session mode: the session's kernel was killed or died during this block, its state is gone. */
    stateLost?: boolean;
}

/** One rich output, a Jupyter MIME bundle: base64 for image/png and image/jpeg, an object for application/json, text otherwise. */
export interface DisplayOutput {
    data: Record<string, unknown>;
    /** MIME type to the path of a file holding it, on the server's side. */
    files: Record<string, string>;
}

export interface DisplayNotification {
    runId: string;
    blockIndex: number;
    display: DisplayOutput;
}

export interface ExecuteResult {
    exitCode: number;
    status: BlockStatus;
    durationMs: number;
    blocks: BlockResult[];
    runId?: string;
}

export interface OutputNotification {
    runId: string;
    blockIndex: number;
    stream: 'stdout' | 'stderr';
    text: string;
}

export interface BlockStartedNotification {
    runId: string;
    blockIndex: number;
    language: string;
    range: Range | null;
    extent: Range | null;
    /** As in BlockResult. */
    blockNumber?: number | null;
}

export interface SandboxInfo {
    workspace: string;
    container: string;
    state: string;
    image: string;
    /** Its session kernels (session mode); absent from older servers. */
    sessions?: SessionInfo[];
}

export interface SessionInfo {
    name: string;
    state: 'idle' | 'busy' | 'dead' | string;
    blocksRun: number;
    memoryBytes?: number | null;
    /** The language its kernel runs: a session has a kernel per language. */
    language?: string;
    /** The kernel's name in the image. */
    kernel?: string;
}

export interface StatusResult {
    sandboxes: SandboxInfo[];
}

/** What cellbox.trust approved: the settings that loosen the sandbox, as the files say them. */
export interface TrustResult {
    workspace: string;
    files: string[];
    /** e.g. `network = "bridge"`; empty when the files ask for nothing to approve. */
    settings: string[];
}

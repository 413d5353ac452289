// What a block's rich outputs (the MIME bundles a session's kernel sent:
// plots, tables) are, for the views that show them: which of a bundle's types
// to draw (the richest this extension can, as Jupyter picks one), and how to
// name them in a line of text ("▨ 1 image, ▦ 1 table": shapes every font
// has, where an emoji would need one). Plain text alone is no rich output:
// the server already puts a bundle's text/plain in the block's text output.
import { DisplayOutput } from './protocol';

/** The types drawn, best first. */
export const DRAWN = ['image/png', 'image/jpeg', 'image/svg+xml', 'text/html', 'text/markdown', 'application/json', 'text/plain'] as const;
export type DrawnType = (typeof DRAWN)[number];

/** The type of a bundle to draw, or undefined when it has none this extension draws. */
export function bestType(display: DisplayOutput): DrawnType | undefined {
    return DRAWN.find((mime) => display.data[mime] !== undefined && display.data[mime] !== null);
}

/** The displays that are more than the text already in the block's output. */
export function richDisplays(displays: readonly DisplayOutput[]): DisplayOutput[] {
    return displays.filter((display) => {
        const mime = bestType(display);
        return mime !== undefined && mime !== 'text/plain';
    });
}

type Kind = 'image' | 'table' | 'HTML output' | 'Markdown output' | 'JSON output';

function kindOf(display: DisplayOutput): Kind | undefined {
    const mime = bestType(display);
    switch (mime) {
        case 'image/png':
        case 'image/jpeg':
        case 'image/svg+xml':
            return 'image';
        case 'text/html':
            return /<table[\s>]/i.test(String(display.data[mime])) ? 'table' : 'HTML output';
        case 'text/markdown':
            return 'Markdown output';
        case 'application/json':
            return 'JSON output';
        default:
            return undefined;
    }
}

const ICONS: Record<Kind, string> = { image: '▨', table: '▦', 'HTML output': '◇', 'Markdown output': '◇', 'JSON output': '◇' };

/** "▨ 1 image", "▨ 2 images, ▦ 1 table"; empty when there is no rich display. */
export function describeDisplays(displays: readonly DisplayOutput[]): string {
    const counts = new Map<Kind, number>();
    for (const display of displays) {
        const kind = kindOf(display);
        if (kind !== undefined) {
            counts.set(kind, (counts.get(kind) ?? 0) + 1);
        }
    }
    return [...counts].map(([kind, n]) => `${ICONS[kind]} ${n} ${kind}${n === 1 ? '' : 's'}`).join(', ');
}

// Drives a real VS Code (code-server) in Debian's headless Chromium through
// VS Code's extension-test protocol: opens the URL that names the extension
// under development and its test module, relays the workbench's log, carries
// out what the test asks of the browser (key presses, a screenshot), and exits
// with the test's exit code.
//
//   node drive.js URL TEST_DIR SCREENSHOT_PATH [TIMEOUT_SECONDS]
// (a screenshot the test asks for mid-run, screenshot-NAME, goes beside
// SCREENSHOT_PATH as vscode-NAME.png: vscode-running.png, vscode-approval.png)
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [url, testDir, screenshotPath, timeoutSeconds = '900'] = process.argv.slice(2);
const CHROMIUM_FLAGS = [
    '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CELLBOX_CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: CHROMIUM_FLAGS,
    });
    let exitCode;
    try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 960 } });
        let code;
        await page.exposeFunction('codeAutomationExit', (value) => { code = value; });
        await page.exposeFunction('codeAutomationLog', (level, args) => {
            console.log(`[workbench ${level}] ${Array.isArray(args) ? args.join(' ') : args}`);
        });
        page.on('console', (message) => {
            const text = message.text();
            if (text.includes('cellbox') || message.type() === 'error') {
                console.log(`[console ${message.type()}] ${text}`);
            }
        });
        page.on('pageerror', (error) => console.log(`[page error] ${error.message}`));
        await page.goto(url);
        const deadline = Date.now() + Number(timeoutSeconds) * 1000;
        while (code === undefined) {
            if (Date.now() > deadline) {
                console.log('drive: the test did not finish in time');
                await page.screenshot({ path: path.join(testDir, 'timeout.png') });
                code = 124;
                break;
            }
            await serveRequests(page);
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
        exitCode = code;
    } finally {
        await browser.close();
    }
    console.log(`drive: exit code ${exitCode}`);
    process.exit(exitCode);
}

/** The test asks for things only the browser can do by writing request-ACTION; done-ACTION answers. */
async function serveRequests(page) {
    for (const name of fs.readdirSync(testDir)) {
        if (!name.startsWith('request-')) {
            continue;
        }
        const action = name.slice('request-'.length);
        const payload = fs.readFileSync(path.join(testDir, name), 'utf8');
        fs.unlinkSync(path.join(testDir, name));
        let answer = '';
        if (action === 'shift-enter') {
            await page.keyboard.press('Shift+Enter');
        } else if (action === 'type') {
            // Typed key by key, as a user types (a new line is Enter).
            await page.keyboard.type(payload, { delay: 30 });
        } else if (action === 'read-hover') {
            // The text of the hover widget the editor shows now, as a user reads it.
            const hover = page.locator('.monaco-hover-content').first();
            answer = await hover.innerText({ timeout: 10_000 }).catch((error) => `no hover: ${error.message}`);
        } else if (action === 'read-notifications') {
            // Each notification on screen (toasts, or the list when open): its text and buttons, as a user reads them.
            answer = JSON.stringify(await page.$$eval('.notification-list-item', (items) => items.map((item) => ({
                message: item.querySelector('.notification-list-item-message')?.innerText ?? '',
                buttons: [...item.querySelectorAll('.notification-list-item-buttons-container .monaco-button')].map((b) => b.innerText.trim()),
            }))));
        } else if (action === 'read-statusbar') {
            // The status bar's entries, as a user reads them (the window's progress among them).
            answer = JSON.stringify(await page.$$eval('.statusbar-item', (items) => items.map((item) => item.innerText.trim()).filter((text) => text)));
        } else if (action === 'read-webviews') {
            // What cellbox's webviews show (each is a frame inside the workbench's own): images, tables, headings.
            const found = [];
            for (const frame of page.frames()) {
                const seen = await frame.evaluate(() => {
                    const body = document.querySelector('body.cellbox-displays');
                    return body && {
                        title: document.title,
                        images: [...body.querySelectorAll('img')].map((img) => ({ src: img.src.slice(0, 30), width: img.naturalWidth, height: img.naturalHeight })),
                        tables: [...body.querySelectorAll('table')].map((table) => table.innerText),
                        headings: [...body.querySelectorAll('h2')].map((h) => h.innerText),
                        displays: [...body.querySelectorAll('.display')].map((d) => d.innerText),
                    };
                }).catch(() => null);
                if (seen) {
                    found.push(seen);
                }
            }
            answer = JSON.stringify(found);
        } else if (action.startsWith('click-')) {
            // A notification's button, by its title.
            const title = action.slice('click-'.length);
            await page.locator('.notification-list-item-buttons-container .monaco-button', { hasText: title }).first().click({ timeout: 10_000 });
        } else if (action.startsWith('debug-screenshot')) {
            await page.screenshot({ path: path.join(testDir, `${action}.png`) });
        } else if (action.startsWith('screenshot-')) {
            // At once (a block still running, a question still open), beside the final one: vscode-NAME.png.
            const name = action.slice('screenshot-'.length);
            await page.screenshot({ path: path.join(path.dirname(screenshotPath), `vscode-${name}.png`) });
        } else if (action === 'screenshot') {
            // Let the decorations and lenses settle before the picture.
            await page.waitForTimeout(1000);
            await page.screenshot({ path: screenshotPath });
        } else {
            console.log(`drive: unknown request ${action}`);
        }
        console.log(`drive: did ${action}`);
        // Written whole, then renamed: the test may read it as soon as it exists.
        const done = path.join(testDir, `done-${action}`);
        fs.writeFileSync(`${done}.tmp`, answer);
        fs.renameSync(`${done}.tmp`, done);
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(2);
});

// NIST CAVP GCMVS known answers for assembly/gcm.ts (from test/vectors/gcm-nist.json, which names
// the source files): AES-128 and AES-256, empty plaintext, empty AAD, 16-, 13- and 51-byte texts,
// 20-byte AAD, all three tag lengths, and gcmDecrypt FAIL cases (text zeroed on failure).
import {
  GCM_CTX_KEY,
  GCM_CTX_SIZE,
  GCM_ERR_AUTH,
  GCM_ERR_KEY_LEN,
  GCM_ERR_TAG_LEN,
  GCM_OK,
  GCM_SCRATCH_SIZE,
  GCMD_AAD,
  GCMD_AAD_LEN,
  GCMD_NONCE,
  GCMD_STATUS,
  GCMD_TAG,
  GCMD_TAG_LEN,
  GCMD_TEXT,
  GCMD_TEXT_LEN,
} from '../constants';
import { gcm_init, gcm_open_batch, gcm_seal_batch } from '../gcm';

const ctx = heap.alloc(GCM_CTX_SIZE);
const d = heap.alloc(32);
const nonce = heap.alloc(16);
const aad = heap.alloc(128);
const text = heap.alloc(256);
const scratch = heap.alloc(GCM_SCRATCH_SIZE);

function put(p: usize, hex: string): u32 {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) store<u8>(p + i, <u8>I32.parseInt(hex.substr(i * 2, 2), 16));
  return n;
}
function hexOf(p: usize, n: u32): string {
  let s = '';
  for (let i: u32 = 0; i < n; i++) {
    const b = load<u8>(p + i);
    s += (b < 16 ? '0' : '') + b.toString(16);
  }
  return s;
}
/** Loads key, nonce, AAD and text; the tag slot is right after the text. Returns the text length. */
function setup(key: string, iv: string, a: string, t: string, tagLen: u32): u32 {
  const kl = put(ctx + GCM_CTX_KEY, key);
  expect(gcm_init(ctx, kl)).toBe(GCM_OK);
  put(nonce, iv);
  const al = put(aad, a);
  const tl = put(text, t);
  store<u32>(d + GCMD_TEXT, <u32>text);
  store<u32>(d + GCMD_TEXT_LEN, tl);
  store<u32>(d + GCMD_AAD, <u32>aad);
  store<u32>(d + GCMD_AAD_LEN, al);
  store<u32>(d + GCMD_NONCE, <u32>nonce);
  store<u32>(d + GCMD_TAG, <u32>(text + tl));
  store<u32>(d + GCMD_TAG_LEN, tagLen);
  return tl;
}
function sealHex(key: string, iv: string, pt: string, a: string, tagLen: u32): string {
  const n = setup(key, iv, a, pt, tagLen);
  expect(gcm_seal_batch(ctx, d, 1, scratch)).toBe(0);
  return hexOf(text, n + tagLen);
}
/** Opens ct||tag; returns the plaintext hex or 'FAIL' (and then checks the text is zeroed). */
function openHex(key: string, iv: string, ct: string, a: string, tag: string): string {
  const tagLen = <u32>tag.length >> 1;
  const n = setup(key, iv, a, ct + tag, tagLen) - tagLen;
  store<u32>(d + GCMD_TEXT_LEN, n);
  store<u32>(d + GCMD_TAG, <u32>(text + n));
  if (gcm_open_batch(ctx, d, 1, scratch) != 0) {
    expect(load<u32>(d + GCMD_STATUS)).toBe(GCM_ERR_AUTH);
    for (let i: u32 = 0; i < n; i++) expect(load<u8>(text + i)).toBe(0);
    return 'FAIL';
  }
  return hexOf(text, n);
}

describe('gcm_seal_batch: gcmEncryptExtIV128/256', () => {
  it('AES-128, empty plaintext and AAD', () => {
    expect(sealHex('11754cd72aec309bf52f7687212e8957', '3c819d9a9bed087615030b65', '', '', 16)).toBe(
      '250327c674aaf477aef2675748cf6971',
    );
  });
  it('AES-128, 16-byte AAD only (GMAC)', () => {
    expect(
      sealHex('77be63708971c4e240d1cb79e8d77feb', 'e0e00f19fed7ba0136a797f3', '', '7a43ec1d9c0a5a78a0b16533a6213cab', 16),
    ).toBe('209fcc8d3675ed938e9c7166709dd946');
  });
  it('AES-128, 16-byte text, empty AAD, tags 16/12/8', () => {
    const k = '7fddb57453c241d03efbed3ac44e371c';
    const iv = 'ee283a3fc75575e33efd4887';
    const pt = 'd5de42b461646c255c87bd2962d3b9a2';
    const ct = '2ccda4a5415cb91e135c2a0f78c9b2fd';
    expect(sealHex(k, iv, pt, '', 16)).toBe(ct + 'b36d1df9b9d5e596f83e8b7f52971cb3');
    expect(sealHex(k, iv, pt, '', 12)).toBe(ct + 'b36d1df9b9d5e596f83e8b7f');
    expect(sealHex(k, iv, pt, '', 8)).toBe(ct + 'b36d1df9b9d5e596');
  });
  it('AES-128, 51-byte text, 20-byte AAD', () => {
    expect(
      sealHex(
        'fe47fcce5fc32665d2ae399e4eec72ba',
        '5adb9609dbaeb58cbd6e7275',
        '7c0e88c88899a779228465074797cd4c2e1498d259b54390b85e3eef1c02df60e743f1b840382c4bccaf3bafb4ca8429bea063',
        '88319d6e1d3ffa5f987199166c8a9b56c2aeba5a',
        16,
      ),
    ).toBe(
      '98f4826f05a265e6dd2be82db241c0fbbbf9ffb1c173aa83964b7cf5393043736365253ddbc5db8778371495da76d269e5db3e' +
        '291ef1982e4defedaa2249f898556b47',
    );
  });
  it('AES-256, empty plaintext and AAD', () => {
    expect(
      sealHex('b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4', '516c33929df5a3284ff463d7', '', '', 16),
    ).toBe('bdc1ac884d332457a1d2664f168c76f0');
  });
  it('AES-256, 16-byte text, empty AAD', () => {
    expect(
      sealHex(
        '31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22',
        '0d18e06c7c725ac9e362e1ce',
        '2db5168e932556f8089a0622981d017d',
        '',
        16,
      ),
    ).toBe('fa4362189661d163fcd6a56d8bf0405a' + 'd636ac1bbedd5cc3ee727dc2ab4a9489');
  });
  it('AES-256, 13-byte text', () => {
    expect(
      sealHex(
        '82c4f12eeec3b2d3d157b0f992d292b237478d2cecc1d5f161389b97f999057a',
        '7b40b20f5f397177990ef2d1',
        '982a296ee1cd7086afad976945',
        '',
        16,
      ),
    ).toBe('ec8e05a0471d6b43a59ca5335f' + '113ddeafc62373cac2f5951bb9165249');
  });
  it('AES-256, 51-byte text, 20-byte AAD', () => {
    expect(
      sealHex(
        '24501ad384e473963d476edcfe08205237acfd49b5b8f33857f8114e863fec7f',
        '9ff18563b978ec281b3f2794',
        '27f348f9cdc0c5bd5e66b1ccb63ad920ff2219d14e8d631b3872265cf117ee86757accb158bd9abb3868fdc0d0b074b5f01b2c',
        'adb5ec720ccf9898500028bf34afccbcaca126ef',
        16,
      ),
    ).toBe(
      'eb7cb754c824e8d96f7c6d9b76c7d26fb874ffbf1d65c6f64a698d839b0b06145dae82057ad55994cf59ad7f67c0fa5e85fab8' +
        'bc95c532fecc594c36d1550286a7a3f0',
    );
  });
});

describe('gcm_open_batch: gcmDecrypt128/256', () => {
  it('AES-128 pass and FAIL, empty text', () => {
    expect(openHex('cf063a34d4a9a76c2c86787d3f96db71', '113b9785971864c83b01c787', '', '', '72ac8493e3a5228b5d130a69d2510e42')).toBe('');
    expect(openHex('a49a5e26a2f8cb63d05546c2a62f5343', '907763b19b9b4ab6bd4f0281', '', '', 'a2be08210d8c470a8df6e8fbd79ec5cf')).toBe('FAIL');
  });
  it('AES-128 16-byte text pass and FAIL', () => {
    expect(
      openHex('e98b72a9881a84ca6b76e0f43e68647a', '8b23299fde174053f3d652ba', '5a3c1cf1985dbb8bed818036fdd5ab42', '', '23c7ab0f952b7091cd324835043b5eb5'),
    ).toBe('28286a321293253c3e0aa2704a278032');
    expect(
      openHex('5164df856f1e9cac04a79b808dc5be39', 'e76925d5355e0584ce871b2b', '0216c899c88d6e32c958c7e553daa5bc', '', 'a145319896329c96df291f64efbe0e3a'),
    ).toBe('FAIL');
  });
  it('AES-128 13-byte text pass and FAIL', () => {
    expect(openHex('387218b246c1a8257748b56980e50c94', 'dd7e014198672be39f95b69d', 'cdba9e73eaf3d38eceb2b04a8d', '', 'ecf90f4a47c9c626d6fb2c765d201556')).toBe(
      '48f5b426baca03064554cc2b30',
    );
    expect(openHex('7d7b6c988137b8d470c57bf674a09c87', '9edf2aa970d016ac962e1fd8', 'a85b66c3cb5eab91d5bdc8bc0e', '', 'dc054efc01f3afd21d9c2484819f569a')).toBe(
      'FAIL',
    );
  });
  it('AES-256 pass and FAIL with AAD', () => {
    expect(
      openHex('6dfdafd6703c285c01f14fd10a6012862b2af950d4733abb403b2e745b26945d', '3749d0b3d5bacb71be06ade6', '', 'c0d249871992e70302ae008193d1e89f', '4aa4cc69f84ee6ac16d9bfb4e05de500'),
    ).toBe('');
    expect(
      openHex('2c392a5eb1a9c705371beda3a901c7c61dca4d93b4291de1dd0dd15ec11ffc45', '0723fb84a08f4ea09841f32a', '', '140be561b6171eab942c486a94d33d43', 'aa0e1c9b57975bfc91aa137231977d2c'),
    ).toBe('FAIL');
  });
  it('AES-256 51-byte text with 20-byte AAD', () => {
    expect(
      openHex(
        '6450d4501b1e6cfbe172c4c8570363e96b496591b842661c28c2f6c908379cad',
        '7e4262035e0bf3d60e91668a',
        '5a99b336fd3cfd82f10fb08f7045012415f0d9a06bb92dcf59c6f0dbe62d433671aacb8a1c52ce7bbf6aea372bf51e2ba79406',
        'f1c522f026e4c5d43851da516a1b78768ab18171',
        'fe93b01636f7bb0458041f213e98de65',
      ),
    ).toBe('17449e236ef5858f6d891412495ead4607bfae2a2d735182a2a0242f9d52fc5345ef912dbe16f3bb4576fe3bcafe336dee6085');
  });
  it('AES-256 13-byte text FAIL', () => {
    expect(
      openHex('8b37c4b8cf634704920059866ad96c49e9da502c63fca4a3a7a4dcec74cb0610', 'cb59344d2b06c4ae57cd0ea4', '66ab935c93555e786b775637a3', '', 'd8733acbb564d8afaa99d7ca2e2f92a9'),
    ).toBe('FAIL');
  });
});

describe('gcm parameters', () => {
  it('refuses other key and tag lengths', () => {
    put(ctx + GCM_CTX_KEY, '000102030405060708090a0b0c0d0e0f1011121314151617');
    expect(gcm_init(ctx, 24)).toBe(GCM_ERR_KEY_LEN);
    setup('000102030405060708090a0b0c0d0e0f', '000000000000000000000000', '', '00', 4);
    expect(gcm_seal_batch(ctx, d, 1, scratch)).toBe(1);
    expect(load<u32>(d + GCMD_STATUS)).toBe(GCM_ERR_TAG_LEN);
  });
});

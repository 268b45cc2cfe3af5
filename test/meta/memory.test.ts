import t from 'tap';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import { metaContract } from '../contracts/meta.js';

metaContract(t, async () => ({ store: new MemoryMetadataStore(), cleanup: async () => {} }));

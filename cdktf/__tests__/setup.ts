// Registers cdktn's jest matchers (toHaveResource, toHaveResourceWithProperties, ...).
import { Testing } from "cdktn";

Testing.setupJest();

// Types of the addon's model entry points (native/addon/model_binding.cpp).
import type { BackendModel, BackendModelSpec } from "../../backend/Backend.js";

export interface ModelBindings {
  // Maps the file and binds tensors on a worker thread.
  loadModel(spec: BackendModelSpec): Promise<BackendModel>;
}
